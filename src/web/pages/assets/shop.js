// The storefront: books by topic, a buy button on each, stock refreshed every two seconds
// (conditional GETs: an unchanged catalog costs a 304).
"use strict";

(() => {
  const { el, api, announce, markChanged, setStatus } = Obelix;
  const status = document.getElementById("shop-status");
  let books = [];
  let etag = null;
  const known = new Map(); // id -> quantity shown

  function visible() {
    const topic = document.getElementById("topic").value;
    const q = document.getElementById("q").value.trim().toLowerCase();
    return books.filter((b) => (!topic || b.topic === topic) && (!q || b.title.toLowerCase().includes(q)));
  }

  function stock(b) {
    if (b.quantity <= 0) return el("span", { class: "stock out" }, "Out of stock");
    if (b.quantity < 10) return el("span", { class: "stock low" }, `Only ${b.quantity} left`);
    return el("span", { class: "stock" }, `${b.quantity} in stock`);
  }

  function draw() {
    const shown = visible();
    const box = document.getElementById("books");
    if (!shown.length) { box.replaceChildren(el("p", { class: "muted" }, "No book matches.")); return; }
    box.replaceChildren(...shown.map((b) => {
      const card = el("article", { class: "book", role: "listitem", "data-book": b.id, "aria-labelledby": `book-${b.id}` },
        el("h3", { id: `book-${b.id}`, "data-badge": true }, b.title),
        el("span", { class: "muted small" }, b.topic),
        el("span", { class: "price" }, `$${b.cost.toFixed(2)}`),
        el("span", { "data-stock": true }, stock(b)),
        el("button", { type: "button", disabled: b.quantity <= 0, "aria-label": `Buy ${b.title}`,
          onclick: () => buy(b) }, "Buy"));
      if (known.has(b.id) && known.get(b.id) !== b.quantity) markChanged(card.querySelector("[data-stock]"));
      known.set(b.id, b.quantity);
      return card;
    }));
  }

  function topics() {
    const select = document.getElementById("topic");
    const chosen = select.value;
    const all = [...new Set(books.map((b) => b.topic))].sort();
    select.replaceChildren(el("option", { value: "" }, "All topics"),
      ...all.map((t) => el("option", { value: t, selected: t === chosen }, t)));
  }

  async function load() {
    const headers = etag ? { "If-None-Match": etag } : {};
    const response = await fetch("/bookstore/books", { headers: { Accept: "application/json", ...headers } });
    if (response.status === 304) return false;
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    etag = response.headers.get("ETag");
    books = await response.json();
    return true;
  }

  async function buy(book) {
    const banner = document.getElementById("order");
    try {
      const { json } = await api(`/bookstore/books/${book.id}/buy`, { method: "POST" });
      banner.textContent = `Bought “${json.title}” for $${Number(json.price).toFixed(2)} — order #${json.id}.`;
      announce(banner.textContent);
    } catch (e) {
      banner.textContent = e.status === 409 ? `“${book.title}” is out of stock.` : `Could not buy: ${e.message}`;
    }
    banner.hidden = false;
    await refresh();
  }

  async function refresh() {
    try {
      if (await load()) { topics(); draw(); }
      setStatus(status, "live", `Stock as of ${new Date().toLocaleTimeString()}`);
    } catch (e) {
      setStatus(status, "down", "Cannot reach the store — retrying…");
    }
  }

  document.getElementById("topic").addEventListener("change", draw);
  document.getElementById("q").addEventListener("input", draw);
  document.getElementById("search").addEventListener("submit", (e) => e.preventDefault());
  refresh();
  setInterval(refresh, 2000);
})();
