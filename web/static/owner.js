// Progressive enhancement for the owner's pages (the forms work without it).
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // Inbox: a "select all" box for bulk approval.
  const wrapper = document.querySelector("[data-select-all]");
  const all = document.querySelector("[data-select-all-box]");
  const boxes = Array.from(document.querySelectorAll("input[data-bulk]"));
  if (wrapper && all && boxes.length) {
    wrapper.hidden = false;
    all.addEventListener("change", () => { boxes.forEach((box) => { box.checked = all.checked; }); });
    boxes.forEach((box) => box.addEventListener("change", () => {
      all.checked = boxes.every((b) => b.checked);
    }));
  }
  // Destructive forms ask once more.
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) { event.preventDefault(); }
    });
  });
});
