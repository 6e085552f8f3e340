// audiencesync's tiny page script: confirmations. Pages work without it.
(function () {
  "use strict";
  // A submit button with data-confirm asks first (without JavaScript it just submits).
  document.addEventListener("submit", function (event) {
    var button = event.submitter;
    var question = button && button.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { event.preventDefault(); }
  }, true);
})();
