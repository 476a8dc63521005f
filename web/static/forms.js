// Text areas declare their limit as data-maxlength (the server's limit, purchaseshare.limits):
// not maxlength, which cuts a long paste silently. Here a counter says how far over a text is and
// the form is not sent until it fits; without this script the server refuses it with a clear page.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("textarea[data-maxlength]").forEach((area) => {
    const limit = Number(area.dataset.maxlength);
    if (!limit) { return; }
    const counter = document.createElement("span");
    counter.className = "muted counter";
    counter.setAttribute("aria-live", "polite");
    // After the label holding the area, if any: the count is not part of the field's name.
    (area.closest("label") || area).insertAdjacentElement("afterend", counter);
    const update = () => {
      const length = area.value.replace(/\r\n/g, "\n").trim().length;
      const over = length - limit;
      counter.textContent = over > 0 ? `${over} characters too many (at most ${limit})` : `${length} / ${limit}`;
      counter.classList.toggle("error", over > 0);
      area.setCustomValidity(over > 0 ? `At most ${limit} characters: ${over} too many.` : "");
    };
    area.addEventListener("input", update);
    update();
  });
});
