/* Asks before a form that cannot be undone is sent (revoking a kiosk or a badge). Served from
   this server; inline handlers are not allowed by the pages' Content-Security-Policy. */
(function () {
  "use strict";
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });
})();
