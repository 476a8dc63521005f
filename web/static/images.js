// A product picture that fails to load (gone from the shop, refused by the image proxy) is
// hidden: the card's CSS tile with the merchant's initial shows instead of a broken-image icon.
// No inline handler anywhere (the CSP forbids them): errors are caught here, at the document.
"use strict";
(function () {
  function hide(img) {
    if (img.closest && img.closest(".thumb")) {
      img.hidden = true;
    }
  }
  // Image errors do not bubble: listen in the capture phase, for cards added later too (live feed).
  document.addEventListener("error", function (event) {
    if (event.target && event.target.tagName === "IMG") {
      hide(event.target);
    }
  }, true);
  // Those that failed before this script ran.
  function sweep() {
    document.querySelectorAll(".thumb img").forEach(function (img) {
      if (img.complete && img.naturalWidth === 0 && img.getAttribute("src")) {
        hide(img);
      }
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", sweep);
  } else {
    sweep();
  }
  window.addEventListener("load", sweep);
})();
