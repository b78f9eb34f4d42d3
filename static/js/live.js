// Live updates for the current workspace over /ws/workspace/. Pages listen for
// "workspace:<event>" DOM events; the feed shows a short notice for each message.
// Whatever was pushed while the socket was down is lost, so on every reconnect the page is told
// its scores may have moved ("workspace:score" with {resync: true}) and re-fetches its cards.
(function () {
  "use strict";
  var status = document.getElementById("live-status");
  var feed = document.getElementById("live-feed");
  var delay = 1000;
  var connectedBefore = false;

  function setStatus(ok) {
    if (status) status.classList.toggle("on", ok);
    document.body.dataset.live = ok ? "on" : "off";
  }

  function show(message) {
    if (!feed || !message.payload || !message.payload.text) return;
    var item = document.createElement("div");
    item.className = "message message-info";
    item.textContent = message.payload.text;
    feed.prepend(item);
    setTimeout(function () { item.remove(); }, 8000);
  }

  function connect() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var socket = new WebSocket(scheme + location.host + "/ws/workspace/");
    socket.onopen = function () {
      delay = 1000;
      setStatus(true);
      if (connectedBefore) {
        document.dispatchEvent(new CustomEvent("workspace:score", { detail: { resync: true } }));
      }
      connectedBefore = true;
    };
    socket.onmessage = function (e) {
      var message = JSON.parse(e.data);
      show(message);
      document.dispatchEvent(new CustomEvent("workspace:" + message.event, { detail: message.payload }));
    };
    socket.onclose = function (e) {
      setStatus(false);
      if (e.code === 4401 || e.code === 4404) return; // signed out or no workspace: do not retry
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 30000);
    };
  }

  document.addEventListener("click", function (e) {
    var target = e.target.closest("[data-copy]");
    if (!target) return;
    var source = document.querySelector(target.dataset.copy);
    if (source && navigator.clipboard) {
      navigator.clipboard.writeText(source.textContent.trim());
      target.textContent = "Copied";
    }
  });

  if (window.WebSocket) connect();
})();
