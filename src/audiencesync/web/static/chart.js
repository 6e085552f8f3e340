// audiencesync's tiny page script: confirmations, the browser's time zone. Pages work
// without it.
(function () {
  "use strict";
  // A submit button with data-confirm asks first (without JavaScript it just submits).
  document.addEventListener("submit", function (event) {
    var button = event.submitter;
    var question = button && button.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { event.preventDefault(); }
  }, true);
  // A user who chose no time zone finds their browser's selected on the account page.
  document.addEventListener("DOMContentLoaded", function () {
    var select = document.querySelector("select[data-browser-zone]");
    var zone = window.Intl && Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (!select || !zone || select.value) { return; }
    select.value = zone;
    var hint = document.getElementById("browser-zone");
    if (select.value === zone && hint) { hint.hidden = false; }
  });
})();
