// Progressive enhancement only: every page works without this file.
// Ask before irreversible steps (cancel, return, no-show).
document.addEventListener("submit", function (event) {
  var form = event.target;
  var question = form && form.getAttribute && form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});
