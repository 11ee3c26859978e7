// A week grid of one room's slots: free ones reserve on a click, this browser's own cancel.
"use strict";

(() => {
  const { el, api, announce, setStatus } = Obelix;
  const MINE = "obelix.reservations";
  const status = document.getElementById("rooms-status");
  let days = [], slots = [], reservations = [];
  const mine = new Set(JSON.parse(localStorage.getItem(MINE) || "[]"));
  const saveMine = () => localStorage.setItem(MINE, JSON.stringify([...mine]));
  const room = () => document.getElementById("room").value;

  function say(text) {
    const box = document.getElementById("message");
    box.textContent = text;
    box.hidden = false;
    announce(text);
  }

  function draw() {
    document.getElementById("week-caption").textContent = `Room ${room()} this week`;
    document.getElementById("week-head").replaceChildren(el("tr", {},
      el("th", { scope: "col" }, el("span", { class: "sr-only" }, "Time")),
      ...days.map((d) => el("th", { scope: "col" }, d))));
    const at = new Map(reservations.map((r) => [`${r.day}|${r.timeslot}`, r]));
    document.getElementById("week-body").replaceChildren(...slots.map((slot) => el("tr", {},
      el("th", { scope: "row" }, slot),
      ...days.map((day) => {
        const r = at.get(`${day}|${slot}`);
        if (!r) {
          return el("td", {}, el("button", { type: "button", class: "free", "aria-label": `Reserve ${room()} on ${day} at ${slot}`,
            onclick: () => reserve(day, slot) }, "Free"));
        }
        if (mine.has(r.id)) {
          return el("td", {}, el("button", { type: "button", class: "mine", "aria-label": `Cancel your reservation of ${room()} on ${day} at ${slot}`,
            onclick: () => cancel(r) }, "Yours ✕"));
        }
        return el("td", {}, el("button", { type: "button", class: "taken", disabled: true, "aria-label": `${day} at ${slot}: taken` }, "Taken"));
      }))));
  }

  async function load() {
    try {
      const { json } = await api(`/rooms/rooms/${encodeURIComponent(room())}/reservations`);
      reservations = json.reservations;
      draw();
      setStatus(status, "live", `As of ${new Date().toLocaleTimeString()}`);
    } catch (e) {
      setStatus(status, "down", "Cannot reach the room servers — retrying…");
    }
  }

  async function reserve(day, timeslot) {
    try {
      const { json } = await api(`/rooms/rooms/${encodeURIComponent(room())}/reservations`,
        { method: "POST", body: { day, timeslot } });
      mine.add(json.id); saveMine();
      say(`Reserved ${json.room} on ${json.day} at ${json.timeslot}.`);
    } catch (e) {
      say(e.status === 409 ? `Someone took ${day} at ${timeslot} first.` : `Could not reserve: ${e.message}`);
    }
    await load();
  }

  async function cancel(r) {
    try {
      await api(`/rooms/reservations/${r.id}`, { method: "DELETE" });
      mine.delete(r.id); saveMine();
      say(`Cancelled ${r.room} on ${r.day} at ${r.timeslot}.`);
    } catch (e) {
      say(`Could not cancel: ${e.message}`);
    }
    await load();
  }

  async function start() {
    const [r, d, t] = await Promise.all([api("/rooms/rooms"), api("/rooms/days"), api("/rooms/timeslots")]);
    days = d.json.days; slots = t.json.timeslots;
    const select = document.getElementById("room");
    select.replaceChildren(...r.json.rooms.map((name) => el("option", { value: name }, name)));
    select.addEventListener("change", load);
    await load();
    setInterval(load, 3000);
  }
  start().catch(() => setStatus(status, "down", "Cannot reach the room servers"));
})();
