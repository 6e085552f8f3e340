// audiencesync's tiny page script: confirmations, the field of a refused save, the
// browser's time zone. Pages work without it.
(function () {
  "use strict";
  // A submit button with data-confirm asks first (without JavaScript it just submits).
  document.addEventListener("submit", function (event) {
    var button = event.submitter;
    var question = button && button.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { event.preventDefault(); }
  }, true);
  // After a refused save, the field at fault: its error in view, its input focused (the
  // page would otherwise open at the top, the error possibly far below).
  document.addEventListener("DOMContentLoaded", function () {
    var error = document.querySelector(".field-error");
    if (!error) { return; }
    var details = error.closest("details");
    if (details) { details.open = true; }
    var form = error.closest("form") || document;
    var name = error.getAttribute("data-field");
    var input = null;
    if (name) {
      var named = form.querySelectorAll("[name]");
      for (var i = 0; i < named.length; i++) {
        if (named[i].name === name && named[i].type !== "hidden" && !named[i].disabled) {
          input = named[i];
          break;
        }
      }
    }
    error.scrollIntoView({ block: "center" });
    if (input) { input.focus({ preventScroll: true }); }
  });
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
