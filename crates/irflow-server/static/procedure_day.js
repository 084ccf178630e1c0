// The consent signature pad: the patient signs with a finger, a pen or the mouse in a
// canvas; the drawing goes into the form as a PNG data URL when it is submitted.
// Progressive enhancement: without this file, consent is recorded as signed on paper.
(function () {
  function setUp(pad) {
    var canvas = pad.querySelector("canvas");
    var input = pad.querySelector("input[name=signature_png]");
    var clear = pad.querySelector("[data-signature-clear]");
    var form = pad.closest("form");
    if (!canvas || !input || !form || !canvas.getContext) {
      return;
    }
    pad.hidden = false;
    var onScreen = form.querySelector("input[name=method][value=on_screen]");
    if (onScreen) {
      onScreen.disabled = false;
    }
    var ctx = canvas.getContext("2d");
    ctx.lineWidth = 2.5;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.strokeStyle = "#111";
    var drawing = false;
    var drawn = false;
    function point(event) {
      var r = canvas.getBoundingClientRect();
      return {
        x: (event.clientX - r.left) * (canvas.width / r.width),
        y: (event.clientY - r.top) * (canvas.height / r.height)
      };
    }
    canvas.addEventListener("pointerdown", function (event) {
      event.preventDefault();
      canvas.setPointerCapture(event.pointerId);
      drawing = true;
      var p = point(event);
      ctx.beginPath();
      ctx.moveTo(p.x, p.y);
    });
    canvas.addEventListener("pointermove", function (event) {
      if (!drawing) {
        return;
      }
      var p = point(event);
      ctx.lineTo(p.x, p.y);
      ctx.stroke();
      drawn = true;
      if (onScreen) {
        onScreen.checked = true;
      }
    });
    function stop() {
      drawing = false;
    }
    canvas.addEventListener("pointerup", stop);
    canvas.addEventListener("pointercancel", stop);
    if (clear) {
      clear.addEventListener("click", function () {
        ctx.clearRect(0, 0, canvas.width, canvas.height);
        drawn = false;
        input.value = "";
      });
    }
    form.addEventListener("submit", function () {
      var method = form.querySelector("input[name=method]:checked");
      input.value = drawn && method && method.value === "on_screen" ? canvas.toDataURL("image/png") : "";
    });
  }
  document.querySelectorAll("[data-signature-pad]").forEach(setUp);
})();

// The recovery page's "minutes left" counts down without a reload (the server's words:
// whole minutes rounded up, "monitoring time done" at the end).
(function () {
  var nodes = document.querySelectorAll("[data-left-until]");
  if (!nodes.length) {
    return;
  }
  function words(minutes) {
    if (minutes <= 0) {
      return "monitoring time done";
    }
    return minutes === 1 ? "1 minute left" : minutes + " minutes left";
  }
  function tick() {
    var now = Date.now();
    nodes.forEach(function (node) {
      var until = Date.parse(node.getAttribute("data-left-until"));
      if (isNaN(until)) {
        return;
      }
      var minutes = Math.max(0, Math.ceil((until - now) / 60000));
      node.textContent = words(minutes);
      node.classList.toggle("day-done", minutes === 0);
    });
  }
  tick();
  setInterval(tick, 5000);
})();
