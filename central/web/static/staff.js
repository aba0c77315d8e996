/* Asks before a form that cannot be undone is sent (revoking a kiosk or a badge), and prints. Served from
   this server; inline handlers are not allowed by the pages' Content-Security-Policy. */
(function () {
  "use strict";
  document.addEventListener("click", function (event) {
    var target = event.target;
    if (target && target.hasAttribute && target.hasAttribute("data-print")) {
      window.print();
    }
  });
  window.addEventListener("pageshow", function () {
    Array.prototype.forEach.call(document.querySelectorAll("button[type=submit]"), function (b) {
      b.disabled = false;
    });
  });
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
      return;
    }
    // The server does a form once whatever happens (its one-time token); this only spares a
    // second request from a double click.
    if ((form.method || "").toLowerCase() === "post") {
      setTimeout(function () {
        Array.prototype.forEach.call(form.querySelectorAll("button[type=submit]"), function (b) {
          b.disabled = true;
        });
      }, 0);
    }
  });
})();

/* A form marked data-once disables its submit buttons once sent, so a second click cannot send
   it again while the next page loads (the server also makes one job of a form sent twice). */
(function () {
  "use strict";
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (event.defaultPrevented || !form.hasAttribute || !form.hasAttribute("data-once")) { return; }
    window.setTimeout(function () {
      var buttons = form.querySelectorAll("button[type=submit], input[type=submit]");
      for (var i = 0; i < buttons.length; i++) { buttons[i].disabled = true; }
    }, 0);
  });
})();
