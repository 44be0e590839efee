// Small behaviours that need no inline script (the CSP forbids it).
document.addEventListener("submit", (event) => {
  const question = event.target.dataset.confirm;
  if (question && !window.confirm(question)) event.preventDefault();
});

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
