/* The site picker: typing narrows the list of sites (by id, name, pinyin or initials, as the
   server wrote them in data-search) and opens the districts that still have a match. Without
   this script the picker is still whole: districts and sites are plain checkboxes. */
(function () {
  "use strict";
  function fold(text) { return (text || "").toLowerCase().replace(/\s+/g, ""); }
  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("[data-site-picker]"), function (picker) {
      var box = picker.querySelector("[data-picker-filter]");
      if (!box) { return; }
      box.addEventListener("input", function () {
        var wanted = fold(box.value);
        Array.prototype.forEach.call(picker.querySelectorAll("details.district"), function (group) {
          var shown = 0;
          Array.prototype.forEach.call(group.querySelectorAll("[data-search]"), function (item) {
            var words = item.getAttribute("data-search").toLowerCase().split(" ");
            var hit = !wanted || words.some(function (w) { return w.indexOf(wanted) === 0 || w.indexOf(wanted) > 0 && /[^\x00-\x7f]/.test(wanted); });
            item.hidden = !hit;
            if (hit) { shown += 1; }
          });
          var districtHit = wanted && fold(group.getAttribute("data-district")).indexOf(wanted) === 0;
          group.hidden = !shown && !districtHit;
          group.open = !!wanted && shown > 0;
        });
      });
    });
  });
})();
