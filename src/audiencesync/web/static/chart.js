// audiencesync's tiny page script: chart tooltips and confirmations. Pages work without it.
(function () {
  "use strict";
  var tip = null;
  function show(event) {
    var point = event.target.closest && event.target.closest("svg.chart .point");
    if (!point) { if (tip) { tip.hidden = true; } return; }
    if (!tip) { tip = document.createElement("div"); tip.className = "chart-tip"; document.body.appendChild(tip); }
    tip.textContent = point.getAttribute("data-tip");
    tip.hidden = false;
    tip.style.left = (event.pageX + 12) + "px";
    tip.style.top = (event.pageY + 12) + "px";
  }
  document.addEventListener("mousemove", show);
  // A submit button with data-confirm asks first (without JavaScript it just submits).
  document.addEventListener("submit", function (event) {
    var button = event.submitter;
    var question = button && button.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { event.preventDefault(); }
  }, true);
})();
