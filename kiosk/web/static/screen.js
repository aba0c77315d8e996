/* The kiosk screen. Everything shown arrives by server-sent events, already worded in the
   kiosk's language by the server; this script only places it, keeps the clock ticking, plays the
   sounds, and passes keyboard-wedge scanner input and the Arrive / Leave buttons to the server. */
(function () {
  "use strict";

  const config = JSON.parse(document.getElementById("screen-config").textContent);
  const $ = (id) => document.getElementById(id);
  const result = $("result");

  const ICONS = {
    arrival:
      '<svg viewBox="0 0 24 24" fill="none" stroke="#fff" stroke-width="2.6" stroke-linecap="round" stroke-linejoin="round"><circle cx="12" cy="12" r="10"/><path d="M7 12.5l3.2 3.2L17 9"/></svg>',
    departure:
      '<svg viewBox="0 0 24 24" fill="none" stroke="#fff" stroke-width="2.6" stroke-linecap="round" stroke-linejoin="round"><circle cx="12" cy="12" r="10"/><path d="M16.5 12H7.5M11 8l-4 4 4 4"/></svg>',
    repeat:
      '<svg viewBox="0 0 24 24" fill="none" stroke="#fff" stroke-width="2.6" stroke-linecap="round" stroke-linejoin="round"><circle cx="12" cy="12" r="10"/><path d="M12 7v5l3 2"/></svg>',
    refused:
      '<svg viewBox="0 0 24 24" fill="none" stroke="#fff" stroke-width="2.6" stroke-linecap="round" stroke-linejoin="round"><circle cx="12" cy="12" r="10"/><path d="M8.5 8.5l7 7M15.5 8.5l-7 7"/></svg>',
  };
  ICONS.error = ICONS.refused;

  let screenToken = config.screen_token;
  let skewMs = 0; // the kiosk's shown time minus this browser's clock
  let hideTimer = null;
  let streamDown = false;
  let modeTimer = null;

  window.KioskSounds.enabled = config.sounds;

  // ---- clock -------------------------------------------------------------------------------
  const clockFormat = new Intl.DateTimeFormat(config.locale, {
    timeZone: config.timezone,
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    hourCycle: "h23",
  });

  function tick() {
    const shown = Date.now() + skewMs;
    $("clock-time").textContent = clockFormat.format(new Date(shown));
    setTimeout(tick, 1000 - (shown % 1000) + 5);
  }

  // ---- status ------------------------------------------------------------------------------
  function setBadge(element, part) {
    element.dataset.state = part.state;
    element.textContent = part.text;
  }

  function applyStatus(status) {
    skewMs = status.now_ms - Date.now();
    $("site-name").textContent = status.site_name || config.strings.title;
    const trust = $("clock-trust");
    trust.dataset.trusted = String(status.clock.trusted);
    trust.textContent = status.clock.text;
    setBadge($("net-badge"), status.network);
    setBadge($("camera-badge"), status.camera);
    const note = $("preview-note");
    note.textContent = status.camera.note || "";
    note.hidden = !status.camera.note;
    showBanner(status.banner);
    applyMode(status.mode);
  }

  function showBanner(text) {
    const banner = $("banner");
    banner.textContent = text || "";
    banner.hidden = !text;
  }

  // ---- scan results ------------------------------------------------------------------------
  function showResult(scan) {
    result.dataset.outcome = scan.outcome;
    $("result-icon").innerHTML = ICONS[scan.outcome] || "";
    $("result-headline").textContent = scan.headline;
    const nameBox = $("result-name");
    nameBox.textContent = scan.name || "";
    // A long name gets a smaller size, so the time under it stays on the screen.
    const letters = Array.from(scan.name || "").length;
    nameBox.dataset.size = letters > 12 ? "long" : letters > 5 ? "medium" : "";
    $("result-detail").textContent = scan.detail || "";
    $("result-extra").textContent = scan.extra || "";
    result.classList.remove("fresh");
    void result.offsetWidth; // restart the flash animation for a result right after another
    result.classList.add("fresh");
    window.KioskSounds.play(scan.outcome);
    clearTimeout(hideTimer);
    hideTimer = setTimeout(showIdle, config.result_ms);
    window.kioskLastScan = Object.assign({ shownAt: Date.now() }, scan);
  }

  // require_face: the kiosk waits a moment for a face before it records the badge.
  function showPrompt(prompt) {
    result.dataset.outcome = "prompt";
    $("result-icon").innerHTML = "";
    $("result-headline").textContent = prompt.text;
    $("result-name").textContent = "";
    $("result-detail").textContent = "";
    $("result-extra").textContent = "";
    clearTimeout(hideTimer);
    hideTimer = setTimeout(showIdle, (prompt.wait_s + 1) * 1000);
  }

  function showIdle() {
    result.dataset.outcome = "idle";
    result.classList.remove("fresh");
    $("result-icon").innerHTML = "";
    $("result-headline").textContent = config.strings.idle;
    $("result-name").textContent = "";
    $("result-detail").textContent = config.strings.idle_detail || "";
    $("result-extra").textContent = "";
  }

  // ---- Arrive / Leave buttons ----------------------------------------------------------------
  function applyMode(mode) {
    const note = $("mode-note");
    if (!note) return;
    clearTimeout(modeTimer);
    for (const button of document.querySelectorAll(".mode")) {
      button.classList.toggle("selected", !!mode && button.dataset.kind === mode.kind);
    }
    note.textContent = mode ? mode.text : config.strings.mode_hint;
    note.dataset.kind = mode ? mode.kind : "";
    if (mode) modeTimer = setTimeout(() => applyMode(null), mode.remaining_s * 1000);
  }

  async function post(url, body) {
    const response = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Screen-Token": screenToken },
      body: JSON.stringify(body),
    });
    if (!response.ok) {
      let message = config.strings.failed;
      try {
        message = (await response.json()).error || message;
      } catch (_) {
        /* not JSON: keep the generic message */
      }
      throw new Error(message);
    }
    return response.json();
  }

  for (const button of document.querySelectorAll(".mode")) {
    button.addEventListener("click", () => {
      const kind = button.classList.contains("selected") ? null : button.dataset.kind;
      post(config.mode_url, { kind }).catch((error) => showLocalError(error.message));
    });
  }

  function showLocalError(message) {
    showResult({ outcome: "error", headline: config.strings.failed, name: "", detail: "", extra: message });
  }

  // A wedge scan that cannot reach the kiosk's server (it restarts, e.g. for an update: a few
  // seconds) is sent again for up to wedge_retry_ms, so the person's one scan is not lost. A scan
  // the server took but whose answer was lost comes back as a repeat: no second record.
  async function postWedge(payload) {
    const giveUp = performance.now() + config.wedge_retry_ms;
    for (let attempt = 0; ; attempt += 1) {
      try {
        const scan = await post(config.wedge_url, { payload });
        // The event stream may not be back yet to show it: the answer is the same message.
        if (attempt > 0) showResult(scan);
        return scan;
      } catch (error) {
        // fetch rejects with a TypeError only when no answer came at all.
        if (!(error instanceof TypeError) || performance.now() > giveUp) throw error;
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
  }

  // ---- keyboard-wedge scanners -----------------------------------------------------------------
  // A wedge scanner types the payload fast and ends with Enter. Keys are taken from anywhere on
  // the page (it has no input box); a pause longer than a scanner ever makes starts afresh, so a
  // stray key press does not glue itself to the next badge.
  let typed = "";
  let lastKeyAt = 0;
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.altKey || event.metaKey) return;
    const now = performance.now();
    if (now - lastKeyAt > config.wedge_gap_ms) typed = "";
    lastKeyAt = now;
    if (event.key === "Enter") {
      event.preventDefault();
      const payload = typed;
      typed = "";
      if (payload.length >= config.wedge_min_length) {
        postWedge(payload).catch((error) => showLocalError(error.message));
      }
      return;
    }
    if (event.key.length === 1 && typed.length < config.wedge_max_length) {
      typed += event.key;
      event.preventDefault();
    }
  });

  // ---- preview -----------------------------------------------------------------------------------
  const preview = $("preview");
  function reloadPreview() {
    preview.src = config.preview_url + "?t=" + Date.now();
  }
  preview.addEventListener("error", () => setTimeout(reloadPreview, 2000));

  // ---- the event stream ----------------------------------------------------------------------------
  function connect() {
    const source = new EventSource(config.stream_url);
    source.addEventListener("hello", (event) => {
      screenToken = JSON.parse(event.data).screen_token;
    });
    source.addEventListener("status", (event) => applyStatus(JSON.parse(event.data)));
    source.addEventListener("scan", (event) => showResult(JSON.parse(event.data)));
    source.addEventListener("mode", (event) => applyMode(JSON.parse(event.data).mode));
    source.addEventListener("prompt", (event) => showPrompt(JSON.parse(event.data)));
    // Settings the page holds from its load (language, sounds, buttons) changed from the centre:
    // load the page again once the result on show has had its time.
    source.addEventListener("reload", () => {
      setTimeout(() => window.location.reload(), config.result_ms || 0);
    });
    source.addEventListener("open", () => {
      if (streamDown) {
        streamDown = false;
        showBanner("");
        reloadPreview();
      }
    });
    source.addEventListener("error", () => {
      streamDown = true;
      showBanner(config.strings.reconnecting);
      $("net-badge").dataset.state = "bad";
      // EventSource retries by itself after a dropped connection, but gives up for good on an
      // HTTP error answer (a proxy's 502, say): then start a new one.
      if (source.readyState === EventSource.CLOSED) setTimeout(connect, 3000);
    });
  }

  showIdle();
  applyMode(null);
  tick();
  connect();
})();
