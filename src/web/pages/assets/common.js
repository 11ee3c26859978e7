// Shared by every page: building elements, relative times, fetching JSON, announcing changes
// to screen readers. Plain JavaScript, no build step.
"use strict";

const Obelix = (() => {
  /** An element: el("td", {class: "num"}, "3") */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  /** "just now", "5 s ago", "3 min ago", "2 h ago", or a date. */
  function ago(time, now = Date.now()) {
    const t = typeof time === "string" ? Date.parse(time) : time;
    if (!Number.isFinite(t)) return "";
    const s = Math.max(0, Math.round((now - t) / 1000));
    if (s < 2) return "just now";
    if (s < 60) return `${s} s ago`;
    if (s < 3600) return `${Math.floor(s / 60)} min ago`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
    return new Date(t).toLocaleDateString();
  }

  /** A <time> that keeps saying how long ago it was (see tick). */
  function timeAgo(iso, prefix = "updated ") {
    const node = el("time", { datetime: iso, title: new Date(iso).toLocaleString(), "data-ago": prefix });
    node.textContent = prefix + ago(iso);
    return node;
  }

  /** Refreshes every <time data-ago> on the page. */
  function tick() {
    const now = Date.now();
    for (const node of document.querySelectorAll("time[data-ago]")) {
      const text = node.dataset.ago + ago(node.getAttribute("datetime"), now);
      if (node.textContent !== text) node.textContent = text;
    }
  }
  setInterval(tick, 1000);

  class HttpError extends Error {
    constructor(status, body) {
      super((body && body.error) || `HTTP ${status}`);
      this.status = status;
      this.body = body;
    }
  }

  /** fetch, JSON in and out, an error with the server's message on a non-2xx answer. */
  async function api(path, { method = "GET", body, headers = {}, timeout = 8000 } = {}) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeout);
    try {
      const init = { method, headers: { Accept: "application/json", ...headers }, signal: controller.signal };
      if (body !== undefined) {
        init.body = JSON.stringify(body);
        init.headers["Content-Type"] = "application/json";
      }
      const response = await fetch(path, init);
      const text = await response.text();
      let json = null;
      try { json = text ? JSON.parse(text) : null; } catch (_) { json = { error: text }; }
      if (!response.ok) throw new HttpError(response.status, json);
      return { json, response };
    } finally {
      clearTimeout(timer);
    }
  }

  /** Says `text` to screen readers (a polite live region on every page). */
  function announce(text) {
    const region = document.getElementById("announcer");
    if (region) region.textContent = text;
  }

  /** Marks `node` as just changed (a flash and, when given, a badge for a few seconds). */
  function markChanged(node, badgeText) {
    node.classList.remove("changed");
    void node.offsetWidth; // restart the animation
    node.classList.add("changed");
    node.dataset.changedAt = String(Date.now());
    if (badgeText) {
      const target = node.querySelector("[data-badge]") || node;
      target.querySelector(".new-badge")?.remove();
      const badge = el("span", { class: "new-badge", text: badgeText });
      target.append(badge);
      setTimeout(() => badge.remove(), 4000);
    }
  }

  function setStatus(node, state, text) {
    node.className = "status " + state;
    node.textContent = text;
  }

  return { el, ago, timeAgo, tick, api, HttpError, announce, markChanged, setStatus };
})();
