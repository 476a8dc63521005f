// Live home feed: new purchases shared by people you follow arrive as server-sent events (the
// cards are rendered and escaped on the server) and are put at the top; a polite live region
// tells screen-reader users. No inline script anywhere: the CSP forbids it.
(function () {
  "use strict";
  var feed = document.getElementById("feed");
  if (!feed || !feed.dataset.live || !window.EventSource) {
    return;
  }
  var status = document.getElementById("feed-status");
  var source = new EventSource(feed.dataset.events);

  function known(id) {
    var entries = feed.querySelectorAll(".feed-entry");
    for (var i = 0; i < entries.length; i++) {
      if (entries[i].getAttribute("data-id") === id) {
        return true;
      }
    }
    return false;
  }

  source.addEventListener("purchase", function (event) {
    var holder = document.createElement("template");
    holder.innerHTML = event.data; // server-rendered by Jinja with autoescaping
    var card = holder.content.querySelector(".feed-entry");
    if (!card || known(card.getAttribute("data-id"))) {
      return;
    }
    var empty = feed.querySelector(".empty");
    if (empty) {
      empty.remove();
    }
    card.classList.add("new");
    feed.insertBefore(card, feed.firstElementChild);
    if (status) {
      var title = card.querySelector("h3");
      status.textContent = "New: " + (title ? title.textContent.trim() : "a shared purchase");
    }
  });

  source.addEventListener("error", function () {
    if (status && source.readyState === EventSource.CLOSED) {
      status.textContent = "Live updates stopped. Reload the page to see new purchases.";
    }
  });
  window.addEventListener("pagehide", function () {
    source.close();
  });
})();
