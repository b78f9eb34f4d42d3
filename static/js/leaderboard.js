// The public board follows /ws/leaderboard/: when a score moves (or someone leaves), the top
// 100's rows are fetched again, at most twice a second. A reconnect re-fetches them too.
(function () {
  "use strict";
  var table = document.querySelector("[data-live-rows]");
  if (!table || !window.WebSocket) return;
  var marker = document.getElementById("board-live");
  var pending = null;
  var delay = 1000;

  function refresh() {
    if (pending) return;
    pending = setTimeout(function () {
      pending = null;
      fetch(table.dataset.liveRows, { headers: { "X-Requested-With": "fetch" } })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          if (!html) return;
          var holder = document.createElement("table");
          holder.innerHTML = html;
          var rows = holder.querySelector("tbody");
          var old = document.getElementById("board-rows");
          if (rows && old) old.replaceWith(rows);
          document.dispatchEvent(new CustomEvent("leaderboard:refreshed"));
        });
    }, 500);
  }

  function connect() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var socket = new WebSocket(scheme + location.host + "/ws/leaderboard/");
    var reconnected = delay > 1000;
    socket.onopen = function () {
      if (marker) marker.hidden = false;
      document.body.dataset.live = "on";
      if (reconnected) refresh();
      delay = 1000;
    };
    socket.onmessage = function (e) {
      var message = JSON.parse(e.data);
      if (message.event === "board" || message.event === "removed") refresh();
    };
    socket.onclose = function () {
      if (marker) marker.hidden = true;
      document.body.dataset.live = "off";
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 30000);
    };
  }
  connect();
})();
