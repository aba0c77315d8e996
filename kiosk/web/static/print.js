/* The printable absent list: its Print button (inline scripts are not allowed on these pages). */
(function () {
  "use strict";
  const button = document.getElementById("print-now");
  if (button) button.addEventListener("click", () => window.print());
})();
