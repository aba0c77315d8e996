/* The site lead's page: the phone's time for the clock button, the search as you type, answers
   that stay in view, what was typed kept across a language switch, and the page kept current
   without reloading it (a small JSON polled; the changed parts fetched and swapped in, never a
   part the lead is typing in). Everything works without this script too, a page at a time. */
(function () {
  "use strict";

  const POLL_MS = 5000;
  const SEARCH_DELAY_MS = 250;
  const TOAST_MS = 12000;
  const KEEP_KEY = "lead-keep";

  // ---- the clock button: the phone's time, taken at the moment of sending ----------------------
  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (form.id === "clock-form") form.elements.phone_time_ms.value = String(Date.now());
    // A second tap while the first is on its way: the server answers copies once anyway
    // (each form has a one-time key), this only spares the wait.
    if (form.method.toLowerCase() === "post") {
      const button = form.querySelector("button[type=submit]");
      if (button) setTimeout(() => (button.disabled = true), 0);
    }
  });

  // ---- answers (toasts) ------------------------------------------------------------------------
  function closeToast(toast) {
    toast.classList.add("gone");
    setTimeout(() => toast.remove(), 300);
  }
  for (const toast of document.querySelectorAll("#toasts .flash")) {
    toast.querySelector(".close").addEventListener("click", () => closeToast(toast));
    if (toast.classList.contains("ok")) setTimeout(() => closeToast(toast), TOAST_MS);
  }

  // ---- busy: the lead is in the middle of something in this part of the page --------------------
  function busy(element) {
    if (element.querySelector("details.act[open]")) return true;
    const active = document.activeElement;
    return !!active && active !== document.body && element.contains(active) &&
      ["INPUT", "SELECT", "TEXTAREA", "BUTTON"].includes(active.tagName);
  }

  // ---- live: fetch the changed parts and swap them in -------------------------------------------
  const live = document.getElementById("live-config");
  let shownState = live ? live.dataset.state : "";
  let fetching = false;

  function partUrl(part) {
    const url = new URL(window.location.href);
    url.hash = "";
    url.searchParams.set("part", part);
    return url.toString();
  }

  async function refresh() {
    if (fetching) return;
    fetching = true;
    try {
      const response = await fetch(partUrl("live"), { credentials: "same-origin" });
      if (!response.ok) return;
      const doc = new DOMParser().parseFromString(await response.text(), "text/html");
      let all = true;
      for (const fresh of doc.querySelectorAll("[data-live]")) {
        const current = document.getElementById(fresh.id);
        if (!current) continue;
        if (busy(current)) {
          all = false; // try again at the next poll
          continue;
        }
        current.replaceWith(document.adoptNode(fresh));
      }
      const state = doc.getElementById("live-state");
      if (all && state) shownState = state.dataset.state;
    } catch (_) {
      /* the kiosk is restarting or the Wi-Fi dropped: the next poll tries again */
    } finally {
      fetching = false;
    }
  }

  async function poll() {
    if (document.visibilityState !== "visible") return;
    try {
      const response = await fetch(live.dataset.stateUrl, { credentials: "same-origin" });
      if (response.status === 401) {
        window.location.reload(); // logged out: the page sends to the login
        return;
      }
      if (!response.ok) return;
      const state = JSON.stringify(await response.json());
      if (state !== canonical(shownState)) await refresh();
    } catch (_) {
      /* offline for a moment */
    }
  }

  function canonical(text) {
    try {
      return JSON.stringify(JSON.parse(text));
    } catch (_) {
      return text;
    }
  }

  if (live) {
    setInterval(poll, POLL_MS);
    document.addEventListener("visibilitychange", poll);
  }

  // ---- the search as you type ------------------------------------------------------------------------
  const findInput = document.getElementById("find-q");
  let searchTimer = null;
  let searchSent = 0;
  async function search() {
    const results = document.getElementById("find-results");
    if (!results) return;
    const url = new URL(window.location.href);
    url.hash = "";
    url.searchParams.set("q", findInput.value);
    const page = new URL(url);
    if (!findInput.value) page.searchParams.delete("q");
    history.replaceState(null, "", page.toString() + "#find");
    url.searchParams.set("part", "find");
    const sent = ++searchSent;
    try {
      const response = await fetch(url.toString(), { credentials: "same-origin" });
      if (!response.ok || sent !== searchSent) return;
      const doc = new DOMParser().parseFromString(await response.text(), "text/html");
      const fresh = doc.getElementById("find-results");
      if (fresh && sent === searchSent) results.replaceWith(document.adoptNode(fresh));
    } catch (_) {
      /* keep what is shown */
    }
  }
  if (findInput) {
    findInput.addEventListener("input", () => {
      clearTimeout(searchTimer);
      searchTimer = setTimeout(search, SEARCH_DELAY_MS);
    });
  }

  // ---- what was typed survives a language switch ---------------------------------------------------
  function keep() {
    const saved = { scroll: window.scrollY, path: window.location.pathname, open: {} };
    for (const details of document.querySelectorAll("details[data-keep]")) {
      if (!details.open) continue;
      const values = {};
      for (const field of details.querySelectorAll("input:not([type=hidden]), select, textarea")) {
        values[field.name] = field.value;
      }
      saved.open[details.dataset.keep] = values;
    }
    for (const id of ["find-q"]) {
      const field = document.getElementById(id);
      if (field) saved[id] = field.value;
    }
    sessionStorage.setItem(KEEP_KEY, JSON.stringify(saved));
  }

  function restore() {
    let saved = null;
    try {
      saved = JSON.parse(sessionStorage.getItem(KEEP_KEY) || "null");
    } catch (_) {
      saved = null;
    }
    sessionStorage.removeItem(KEEP_KEY);
    if (!saved || saved.path !== window.location.pathname) return;
    if (findInput && saved["find-q"] && !findInput.value) {
      findInput.value = saved["find-q"];
      search().then(() => reopen(saved));
    } else {
      reopen(saved);
    }
  }

  function reopen(saved) {
    for (const [key, values] of Object.entries(saved.open || {})) {
      const details = document.querySelector(`details[data-keep="${CSS.escape(key)}"]`);
      if (!details) continue;
      details.open = true;
      for (const [name, value] of Object.entries(values)) {
        const field = details.querySelector(`[name="${CSS.escape(name)}"]`);
        if (field) field.value = value;
      }
    }
    if (typeof saved.scroll === "number") window.scrollTo(0, saved.scroll);
  }

  const langLink = document.getElementById("lang-link");
  if (langLink) langLink.addEventListener("click", keep);
  restore();
})();
