// Teach by pointing: a click (or Enter) on a block of the email fills what the owner is pointing at.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const form = document.querySelector("form[data-teach]");
  if (!form) { return; }
  const hint = document.getElementById("teach-hint");
  const totalOut = document.getElementById("teach-total");
  const totalAt = document.getElementById("teach-total-at");
  const list = document.getElementById("teach-items");
  const picks = Array.from(form.querySelectorAll("input[name=pick]"));
  const hints = {
    total: "Click the total in the email.",
    name: "Click the next item's name.",
    price: "Click that item's price.",
    qty: "Click its quantity, or the next item's name.",
  };
  let current = null; // the item being pointed at: {li, name, price, qty}

  const mode = () => (picks.find((p) => p.checked) || picks[0]).value;
  const setMode = (value) => {
    picks.forEach((p) => { p.checked = p.value === value; });
    hint.textContent = hints[value];
  };
  picks.forEach((p) => p.addEventListener("change", () => setMode(p.value)));

  const hidden = (name, value) => {
    const input = document.createElement("input");
    input.type = "hidden"; input.name = name; input.value = value;
    return input;
  };
  const render = (item) => {
    item.li.replaceChildren();
    const text = document.createElement("span");
    const parts = [item.name ? item.name.text : "(name?)", item.price ? item.price.text : "(price?)"];
    if (item.qty) { parts.push("quantity " + item.qty.text); }
    text.textContent = parts.join(" · ");
    const remove = document.createElement("button");
    remove.type = "button"; remove.className = "secondary"; remove.textContent = "Remove";
    remove.addEventListener("click", () => { item.li.remove(); if (current === item) { current = null; } });
    item.li.append(text, " ", remove,
      hidden("item_name", item.name ? item.name.at : ""), hidden("item_price", item.price ? item.price.at : ""),
      hidden("item_qty", item.qty ? item.qty.at : ""));
  };

  document.querySelectorAll(".teach-rows button.blk").forEach((block) => {
    block.addEventListener("click", () => {
      const chosen = { at: block.dataset.i, text: block.textContent.trim() };
      const isAmount = block.dataset.amount !== undefined;
      const what = mode();
      if ((what === "total" || what === "price") && !isAmount) {
        hint.textContent = "That is not an amount: click one of the marked amounts.";
        return;
      }
      block.classList.add("picked");
      if (what === "total") {
        totalAt.value = chosen.at; totalOut.textContent = chosen.text;
        setMode("name");
      } else if (what === "name") {
        current = { li: document.createElement("li"), name: chosen, price: null, qty: null };
        list.append(current.li); render(current);
        setMode("price");
      } else if (current) {
        current[what] = chosen; render(current);
        setMode(what === "price" ? "qty" : "name");
      } else {
        hint.textContent = "Click an item's name first.";
      }
    });
  });
});
