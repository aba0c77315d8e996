/* The site lead's page: the phone's time for the clock button, and a quiet refresh. */
(function () {
  "use strict";

  const clockForm = document.getElementById("clock-form");
  if (clockForm) {
    clockForm.addEventListener("submit", () => {
      // Taken at the moment of sending: the kiosk compares it with its own clock on arrival.
      clockForm.elements.phone_time_ms.value = String(Date.now());
    });
  }

  // Reload now and then so the lists stay current, but never while the lead is typing or has
  // an action open.
  const REFRESH_MS = 30000;
  function busy() {
    return (
      document.querySelector("details.act[open]") !== null ||
      ["INPUT", "SELECT", "TEXTAREA"].includes(document.activeElement && document.activeElement.tagName)
    );
  }
  setInterval(() => {
    if (!busy() && document.visibilityState === "visible") window.location.reload();
  }, REFRESH_MS);
})();
