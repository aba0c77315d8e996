/* Bar chart of arrivals per 15 minutes, drawn as SVG from the JSON the page embeds.
   Served from this server (no CDN): the centre may run without internet access. */
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";

  function el(name, attrs, text) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attrs).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function niceMax(value) {
    if (value <= 5) { return 5; }
    var step = Math.pow(10, Math.floor(Math.log10(value)));
    var scaled = value / step;
    var nice = scaled <= 2 ? 2 : scaled <= 5 ? 5 : 10;
    return nice * step;
  }

  function draw(box, slots) {
    // Drawn at the width it is shown at, so the labels keep their size on a phone.
    var width = Math.max(300, Math.round(box.clientWidth || 640));
    var height = 220, left = 34, right = 8, top = 10, bottom = 28;
    var plotW = width - left - right, plotH = height - top - bottom;
    var max = niceMax(Math.max.apply(null, slots.map(function (s) { return s.n; })));
    var svg = el("svg", { viewBox: "0 0 " + width + " " + height });
    var ticks = 5;
    for (var i = 0; i <= ticks; i++) {
      var value = Math.round(max * i / ticks);
      var y = top + plotH - plotH * i / ticks;
      svg.appendChild(el("line", { x1: left, x2: width - right, y1: y, y2: y, "class": "grid" }));
      svg.appendChild(el("text", { x: left - 4, y: y + 4, "text-anchor": "end" }, String(value)));
    }
    var slotW = plotW / slots.length;
    var labelEvery = Math.max(1, Math.ceil(slots.length / Math.max(2, Math.floor(plotW / 56))));
    slots.forEach(function (slot, index) {
      var barH = plotH * slot.n / max;
      var x = left + index * slotW;
      var bar = el("rect", {
        x: x + slotW * 0.12, y: top + plotH - barH, width: Math.max(1, slotW * 0.76),
        height: barH, "class": "bar"
      });
      bar.appendChild(el("title", {}, slot.t + " · " + slot.n));
      svg.appendChild(bar);
      if (index % labelEvery === 0) {
        svg.appendChild(el("text", { x: x + slotW / 2, y: height - 10, "text-anchor": "middle" }, slot.t));
      }
    });
    svg.appendChild(el("line", { x1: left, x2: width - right, y1: top + plotH, y2: top + plotH, "class": "axis" }));
    box.appendChild(svg);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var box = document.getElementById("arrivals-chart");
    var data = document.getElementById("arrivals-data");
    if (!box || !data) { return; }
    var slots = JSON.parse(data.textContent);
    if (slots.length) { draw(box, slots); }
  });
})();
