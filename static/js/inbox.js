// The inbox's unread badge in the navigation follows the workspace socket: live.js turns each
// pushed message into a "workspace:<event>" DOM event, and the inbox pushes "inbox_unread" with
// the new count whenever a reply arrives or is read.
(function () {
  "use strict";
  if (window.inboxUnreadBound) return;
  window.inboxUnreadBound = true;

  function setCount(count) {
    var badge = document.getElementById("inbox-unread");
    if (!badge || typeof count !== "number" || count < 0) return;
    badge.textContent = String(count);
    badge.setAttribute("aria-label", count + " unread");
    badge.hidden = count === 0;
  }

  document.addEventListener("workspace:inbox_unread", function (e) {
    if (e.detail) setCount(e.detail.unread);
  });
})();
