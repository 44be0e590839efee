// Small behaviours that need no inline script (the CSP forbids it).
document.addEventListener("submit", (event) => {
  const question = event.target.dataset.confirm;
  if (question && !window.confirm(question)) event.preventDefault();
});

// A form that carries another form's fields (the rules page's numbers form carries the draft
// being edited) copies their values in as it is sent: a hidden input names its source by id.
document.addEventListener("submit", (event) => {
  for (const copy of event.target.querySelectorAll("input[data-copy-of]")) {
    const source = document.getElementById(copy.dataset.copyOf);
    if (source) copy.value = source.value;
  }
});

// The language switch brings the user back to the address the page shows: a filter that htmx
// pushed into the history (or a step back to an earlier one) changes it after the page was drawn.
function followAddress() {
  for (const next of document.querySelectorAll('.language-switch input[name="next"]')) {
    next.value = window.location.pathname + window.location.search;
  }
}
for (const name of ["htmx:pushedIntoHistory", "htmx:replacedInHistory", "htmx:historyRestore"]) {
  document.addEventListener(name, followAddress);
}

// htmx does not swap error answers; show their message instead of failing silently. The
// fallback sentence comes translated from the page (data-request-failed on #flashes).
document.addEventListener("htmx:responseError", (event) => {
  const flashes = document.getElementById("flashes");
  if (!flashes) return;
  const note = document.createElement("p");
  note.className = "flash flash-error";
  const parsed = new DOMParser().parseFromString(event.detail.xhr.responseText, "text/html");
  const fallback = (flashes.dataset.requestFailed || "The request failed ({status}).")
    .replace("{status}", String(event.detail.xhr.status));
  note.textContent = parsed.body.textContent.trim() || fallback;
  flashes.replaceChildren(note);
});

// Deadlines count down live (the server's text is right at load time). The time left is
// counted from the server's clock at render (data-now), so a wrong clock on the rep's machine
// does not change it. The words come translated from the element; its title gives the
// deadline in the browser's time zone.
const countdownSeenAt = new WeakMap();
function tickCountdowns() {
  for (const element of document.querySelectorAll(".countdown[data-deadline][data-now]")) {
    const deadline = new Date(element.dataset.deadline).getTime();
    const renderedAt = new Date(element.dataset.now).getTime();
    if (Number.isNaN(deadline) || Number.isNaN(renderedAt)) continue;
    if (!countdownSeenAt.has(element)) countdownSeenAt.set(element, Date.now());
    element.title = new Date(deadline).toLocaleString(document.documentElement.lang || undefined);
    const minutes = Math.floor((deadline - renderedAt - (Date.now() - countdownSeenAt.get(element))) / 60000);
    element.textContent = minutes < 0 ? element.dataset.passed : element.dataset.left
      .replace("{days}", String(Math.floor(minutes / 1440)))
      .replace("{hours}", String(Math.floor(minutes / 60) % 24))
      .replace("{minutes}", String(minutes % 60));
  }
}
tickCountdowns();
setInterval(tickCountdowns, 30000);
document.addEventListener("htmx:afterSettle", tickCountdowns);

// After a refused form, the keyboard goes where the correction is: to the first field marked
// invalid, when a page loads with one and when an htmx answer swaps a refused form in place of
// the one that held the focus (which leaves the focus nowhere, at the top of the page). A group
// of radio buttons is marked invalid as a whole (its fieldset or list), which takes no focus:
// the focus goes to its first radio.
function focusFirstInvalid() {
  if (document.activeElement && document.activeElement !== document.body) return;
  const marked = document.querySelector('[aria-invalid="true"]');
  if (!marked) return;
  const control = marked.matches("input, select, textarea, button")
    ? marked : marked.querySelector("input:not([type=hidden]), select, textarea");
  (control || marked).focus();
}
focusFirstInvalid();

// An accepted answer that replaces the element holding the focus (a decided row, a
// notification marked read) would leave the focus nowhere as well: it goes back into what
// was swapped in, to its first control, so the keyboard carries on from where it was.
const FOCUSABLE = 'a[href], button:not([disabled]), summary, select:not([disabled]), ' +
  'textarea:not([disabled]), input:not([type="hidden"]):not([disabled])';
// Kept until the swap settles: another answer (the inbox count a decision triggers) may be
// swapped in between, elsewhere on the page.
let swappedFocus = null;
document.addEventListener("htmx:beforeSwap", (event) => {
  const target = event.detail.target;
  if (event.detail.shouldSwap && target && target.contains(document.activeElement)) {
    swappedFocus = { target, id: target.id };
  }
});
function focusSwappedIn() {
  const swapped = swappedFocus;
  swappedFocus = null;
  if (!swapped || (document.activeElement && document.activeElement !== document.body)) return;
  const root = swapped.target.isConnected ? swapped.target
    : swapped.id && document.getElementById(swapped.id);
  if (!root) return;
  const shown = [...root.querySelectorAll(FOCUSABLE)].find((element) =>
    element.getClientRects().length > 0);
  if (shown) shown.focus();
}
// A refused field first, wherever it is; otherwise a control of what was swapped in.
document.addEventListener("htmx:afterSettle", () => {
  focusFirstInvalid();
  focusSwappedIn();
});
