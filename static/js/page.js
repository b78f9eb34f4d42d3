// Page behaviour that would otherwise be inline handlers (the Content-Security-Policy allows
// scripts only from our static files): a form or submit button with data-confirm asks first.
(function () {
  "use strict";
  document.addEventListener(
    "submit",
    function (e) {
      var button = e.submitter;
      var question = (button && button.dataset.confirm) || e.target.dataset.confirm;
      if (question && !window.confirm(question)) {
        e.preventDefault();
        e.stopPropagation(); // capture phase: htmx never sees a declined submit
      }
    },
    true
  );
})();
