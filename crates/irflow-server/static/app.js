// Progressive enhancement only: every page works without this file.
// Ask before irreversible steps (cancel, return, no-show).
document.addEventListener("submit", function (event) {
  var form = event.target;
  var question = form && form.getAttribute && form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});
// Print links (no inline handlers: the CSP forbids them).
document.addEventListener("click", function (event) {
  var link = event.target.closest && event.target.closest("[data-print]");
  if (link) {
    event.preventDefault();
    window.print();
  }
});
