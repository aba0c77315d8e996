/* Live figures: the page polls a small JSON (its address in <main data-live>) and writes the new
   figures into the cells it shows, so search, filters and scrolling stay as they are. Paused
   while the tab is hidden. Served from this server: the pages' Content-Security-Policy allows
   no inline script. */
(function () {
  "use strict";
  var main = document.querySelector("main[data-live]");
  if (!main || !window.fetch) { return; }
  var url = main.getAttribute("data-live");
  var every = Math.max(5, parseInt(main.getAttribute("data-live-every"), 10) || 15) * 1000;
  var note = document.getElementById("live-note");
  var stamp = "";
  var timer = null;

  function set(node, value) {
    if (!node) { return; }
    var text = String(value);
    if (node.textContent !== text) {
      node.textContent = text;
      node.classList.add("changed");
      setTimeout(function () { node.classList.remove("changed"); }, 2000);
    }
  }

  function apply(data) {
    var rows = data.sites || data.cadres || {};
    var key = data.sites ? "data-site" : "data-cadre";
    var totals = data.totals || {};
    if (data.sites && main.getAttribute("data-live-narrowed") === "1") {
      // A narrowed list (a district, a search) shows the totals of its own rows.
      totals = {};
      Array.prototype.forEach.call(document.querySelectorAll("tr[data-site]"), function (row) {
        var figures = rows[row.getAttribute("data-site")] || {};
        Object.keys(data.totals || {}).forEach(function (name) {
          totals[name] = (totals[name] || 0) + (figures[name] || 0);
        });
      });
    }
    Object.keys(totals).forEach(function (name) {
      set(document.querySelector('[data-total="' + name + '"]'), totals[name]);
    });
    // Which column holds which figure is said once, on the table's headers (not on each of a
    // thousand cells: the all-sites page stays small).
    var columns = [];
    var head = document.querySelector("tr[" + key + "]");
    head = head && head.closest("table").querySelector("thead tr");
    Array.prototype.forEach.call(head ? head.children : [], function (th, index) {
      if (th.hasAttribute("data-f")) { columns.push([index, th.getAttribute("data-f")]); }
    });
    Array.prototype.forEach.call(document.querySelectorAll("tr[" + key + "]"), function (row) {
      var figures = rows[row.getAttribute(key)];
      if (!figures) { return; }
      columns.forEach(function (column) {
        var cell = row.children[column[0]];
        var name = column[1];
        if (!cell) { return; }
        if (name === "status") {
          var pill = cell.querySelector(".pill");
          if (pill && figures.status_label !== undefined) { set(pill, figures.status_label); }
        } else if (figures[name] !== undefined) {
          var target = cell.querySelector("b") || cell;
          set(target, figures[name]);
        }
      });
    });
    if (note) {
      note.hidden = false;
      var now = new Date();
      note.querySelector("time").textContent = now.toTimeString().slice(0, 8);
    }
  }

  function poll() {
    if (document.hidden) { return; }
    var glue = url.indexOf("?") < 0 ? "?" : "&";
    fetch(url + (stamp ? glue + "since=" + encodeURIComponent(stamp) : ""), {
      headers: { "Accept": "application/json" }, credentials: "same-origin"
    }).then(function (answer) {
      if (answer.status === 401) { window.location.reload(); return null; }
      return answer.ok ? answer.json() : null;
    }).then(function (data) {
      if (!data) { return; }
      stamp = data.stamp || stamp;
      if (!data.unchanged) { apply(data); } else if (note) {
        note.hidden = false;
        note.querySelector("time").textContent = new Date().toTimeString().slice(0, 8);
      }
    }).catch(function () { /* the next poll tries again */ });
  }

  timer = setInterval(poll, every);
  document.addEventListener("visibilitychange", function () { if (!document.hidden) { poll(); } });
  window.addEventListener("pagehide", function () { clearInterval(timer); });
})();
