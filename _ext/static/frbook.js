// frbook: layout help for the HTML book (added by _ext/book_style.py).
//
// A figure whose image is wider than the text column is given room in the right margin, up to
// 136% of the column (the theme's full-width cells use the same), on screens of 992 px and more.
// On narrower screens a multi-panel figure (a row of panels: wider than MULTI_PANEL times its
// height) is not shrunk to the column, where its labels would be a few pixels tall: it keeps
// LEGIBLE of its natural size and scrolls sideways inside its own box, so the page never does.
(function () {
  "use strict";
  const MARGIN = 1.36;
  const MULTI_PANEL = 2.2;
  const LEGIBLE = 0.8;

  function widen() {
    const wide = window.matchMedia("(min-width: 992px)").matches;
    for (const img of document.querySelectorAll(".bd-article .cell_output img, .bd-article figure img")) {
      const box = img.closest("figure") || img.closest(".cell_output");
      if (!box || !img.naturalWidth) continue;
      box.classList.remove("frbook-wide", "frbook-scroll");
      box.style.width = "";
      img.style.width = "";
      const column = box.parentElement.getBoundingClientRect().width;
      const multiPanel = img.naturalWidth > MULTI_PANEL * img.naturalHeight;
      if (wide && img.naturalWidth > column) {
        box.classList.add("frbook-wide");
        box.style.width = Math.min(img.naturalWidth, MARGIN * column) + "px";
      } else if (!wide && multiPanel && LEGIBLE * img.naturalWidth > column) {
        box.classList.add("frbook-scroll");
        img.style.width = LEGIBLE * img.naturalWidth + "px";
      }
    }
  }

  function whenLoaded() {
    for (const img of document.querySelectorAll(".bd-article img")) {
      if (!img.complete) img.addEventListener("load", widen, {once: true});
    }
    widen();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", whenLoaded);
  else whenLoaded();
  window.addEventListener("resize", widen);
})();
