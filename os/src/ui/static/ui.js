// The web UI's only script: live logs and service state over server-sent events. Pages work
// without it (they show the log as it was when loaded).
"use strict";
(function () {
  var log = document.getElementById("live-log");
  if (!log || !window.EventSource) { return; }
  var state = document.getElementById("live-state");
  var source = new EventSource(log.getAttribute("data-events"));
  var lines = 0;
  source.addEventListener("log", function (e) {
    var line = document.createElement("span");
    line.textContent = e.data + "\n";
    log.appendChild(line);
    lines += 1;
    while (lines > 2000 && log.firstChild) { log.removeChild(log.firstChild); lines -= 1; }
    log.scrollTop = log.scrollHeight;
  });
  source.addEventListener("state", function (e) {
    if (state) { state.textContent = e.data; state.className = "state-" + e.data.split(" ")[0]; }
  });
})();
