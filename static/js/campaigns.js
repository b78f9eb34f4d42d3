// The campaign builder: after a refused save the page comes back with the errors beside their
// fields; bring the first one into view (it may be a later step, far down the page).
(function () {
  "use strict";
  function firstProblem() {
    var field = document.querySelector(
      '.builder [aria-invalid="true"], .builder .launch-refused, .resume-card [aria-invalid="true"]'
    );
    if (!field) return;
    field.scrollIntoView({ block: "center" });
    field.focus({ preventScroll: true });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", firstProblem);
  } else {
    firstProblem();
  }
})();
