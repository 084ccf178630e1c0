// Outside imaging: the upload on the case page (with a progress bar, the result shown
// without a reload) and the series viewer (slider, mouse wheel and keys; window/level
// presets). Progressive enhancement: without this file the upload is a plain form post
// and every slice is a link. No inline handlers (the CSP forbids them); the text of
// results is set with textContent, never as HTML.
(function () {
  "use strict";

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined && text !== null) { e.textContent = text; }
    return e;
  }

  function size(bytes) {
    if (bytes >= 1024 * 1024 * 1024) { return (bytes / (1024 * 1024 * 1024)).toFixed(1) + " GB"; }
    if (bytes >= 1024 * 1024) { return (bytes / (1024 * 1024)).toFixed(1) + " MB"; }
    return Math.max(1, Math.round(bytes / 1024)) + " KB";
  }

  // ---------------------------------------------------------------- upload

  function showResult(box, status, data) {
    box.textContent = "";
    if (!data || typeof data !== "object") {
      box.appendChild(el("p", "form-error", "The upload failed (" + status + "). Try again."));
      return;
    }
    if (data.error) {
      box.appendChild(el("p", "form-error", data.error.message || "The upload failed."));
      return;
    }
    var parts = [data.stored + (data.stored === 1 ? " image stored" : " images stored")];
    if (data.duplicates) { parts.push(data.duplicates + " already on file"); }
    if (data.refused && data.refused.length) { parts.push(data.refused.length + " refused"); }
    if (data.undisplayable) { parts.push(data.undisplayable + " stored but cannot be displayed"); }
    if (data.ignored && data.ignored.length) { parts.push(data.ignored.length + " left out (a CD's DICOMDIR, or files in its folder it does not list)"); }
    var summary = el("p", status >= 400 ? "form-error" : "notice", parts.join(" · ") + ".");
    summary.id = "imaging-result-summary";
    summary.setAttribute("role", "status");
    box.appendChild(summary);
    if (data.waiting) {
      var waiting = el("p", "notice", data.waiting + ".");
      waiting.id = "imaging-result-waiting";
      box.appendChild(waiting);
    }
    if (data.studies && data.studies.length) {
      var ul = el("ul", "imaging-outcomes");
      ul.id = "imaging-result-studies";
      data.studies.forEach(function (s) {
        var li = el("li");
        li.setAttribute("data-outcome", s.outcome);
        var queued = s.outcome === "queued" || s.outcome === "rejected";
        li.appendChild(el("span", "badge " + (queued ? "decision-review" : "decision-clear"),
          queued ? "Waiting for staff" : "On file"));
        li.appendChild(document.createTextNode(" " + (s.description ? s.description + ": " : "") + s.message +
          " (" + s.new_instances + " new)"));
        ul.appendChild(li);
      });
      box.appendChild(ul);
    }
    if (data.refused && data.refused.length) {
      var details = el("details", "imaging-refused");
      details.open = data.refused.length <= 10;
      details.appendChild(el("summary", null, "Refused files"));
      var list = el("ul");
      list.id = "imaging-result-refused";
      data.refused.slice(0, 500).forEach(function (r) {
        var li = el("li");
        li.appendChild(el("code", null, r.name));
        li.appendChild(document.createTextNode(": " + r.reason));
        list.appendChild(li);
      });
      details.appendChild(list);
      box.appendChild(details);
    }
    if (data.ignored && data.ignored.length) {
      var left = el("details", "imaging-refused");
      left.appendChild(el("summary", null, "Left out"));
      var leftList = el("ul");
      leftList.id = "imaging-result-left-out";
      data.ignored.slice(0, 500).forEach(function (r) {
        var li = el("li");
        li.appendChild(el("code", null, r.name));
        li.appendChild(document.createTextNode(": " + r.reason));
        leftList.appendChild(li);
      });
      left.appendChild(leftList);
      box.appendChild(left);
    }
  }

  // Replaces the panel's list of studies with a fresh copy (the result stays shown).
  function refreshStudies(caseId) {
    var xhr = new XMLHttpRequest();
    xhr.open("GET", "/cases/" + caseId + "/imaging");
    xhr.setRequestHeader("HX-Request", "true");
    xhr.responseType = "document";
    xhr.onload = function () {
      if (xhr.status !== 200 || !xhr.response) { return; }
      var fresh = xhr.response.getElementById("imaging-studies");
      var old = document.getElementById("imaging-studies");
      if (fresh && old) { old.replaceWith(document.importNode(fresh, true)); }
    };
    xhr.send();
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form || form.id !== "imaging-upload-form" || !window.FormData || !window.XMLHttpRequest) { return; }
    event.preventDefault();
    var panel = form.closest("[data-case]");
    var caseId = panel ? panel.getAttribute("data-case") : null;
    var box = form.querySelector("#imaging-result");
    var data = new FormData();
    var csrf = form.querySelector("input[name=csrf]");
    if (csrf) { data.append("csrf", csrf.value); }
    var count = 0;
    var total = 0;
    form.querySelectorAll("input[type=file]").forEach(function (input) {
      Array.prototype.forEach.call(input.files || [], function (file) {
        // A folder's files keep their path inside it (the CD's layout).
        data.append("files", file, file.webkitRelativePath || file.name);
        count += 1;
        total += file.size;
      });
    });
    if (count === 0) {
      box.textContent = "";
      box.appendChild(el("p", "form-error", "Choose the files, a zip, or the folder of a CD first."));
      return;
    }
    var button = form.querySelector("button[type=submit]");
    var progressBox = form.querySelector("#imaging-progress-box");
    var bar = form.querySelector("#imaging-progress");
    var text = form.querySelector("#imaging-progress-text");
    button.disabled = true;
    progressBox.hidden = false;
    bar.value = 0;
    bar.removeAttribute("data-done");
    text.textContent = "Sending " + count + (count === 1 ? " file" : " files") + " (" + size(total) + ")…";
    box.textContent = "";

    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.getAttribute("action"));
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.onprogress = function (e) {
      if (e.lengthComputable && e.total > 0) {
        bar.value = Math.round((e.loaded / e.total) * 100);
        text.textContent = size(e.loaded) + " of " + size(e.total) + " sent";
      }
    };
    xhr.upload.onload = function () {
      bar.value = 100;
      text.textContent = "Sent. Reading and matching the images…";
    };
    xhr.onload = function () {
      button.disabled = false;
      var body = null;
      try { body = JSON.parse(xhr.responseText); } catch (e) { body = null; }
      bar.setAttribute("data-done", "true");
      text.textContent = xhr.status < 400 ? "Done." : "Not taken.";
      showResult(box, xhr.status, body);
      form.reset();
      if (caseId && xhr.status < 400) { refreshStudies(caseId); }
    };
    xhr.onerror = function () {
      button.disabled = false;
      text.textContent = "The connection failed.";
      showResult(box, 0, { error: { message: "The upload did not reach irflow. Check the connection and try again." } });
    };
    xhr.send(data);
  });

  // ---------------------------------------------------------------- images that fail

  // An image that cannot be rendered answers with a plain explanation: show it in place.
  document.addEventListener("error", function (event) {
    var img = event.target;
    if (!img || img.tagName !== "IMG" || !img.hasAttribute("data-imaging-img") || img.id === "viewer-image") { return; }
    var url = img.getAttribute("src");
    var note = el("span", "imaging-noimage", "This image could not be displayed (the original is stored).");
    img.replaceWith(note);
    fetch(url, { credentials: "same-origin" }).then(function (r) { return r.text(); }).then(function (t) {
      if (t) { note.textContent = t; }
    }).catch(function () {});
  }, true);

  // ---------------------------------------------------------------- viewer

  function setupViewer() {
    var viewer = document.getElementById("viewer");
    var img = document.getElementById("viewer-image");
    var slider = document.getElementById("viewer-slider");
    var list = document.getElementById("viewer-slices");
    if (!viewer || !img || !slider || !list) { return; }
    var slices = Array.prototype.map.call(list.querySelectorAll("li"), function (li) {
      return { url: li.getAttribute("data-url"), error: li.getAttribute("data-error"), label: li.textContent };
    });
    var message = document.getElementById("viewer-message");
    var position = document.getElementById("viewer-position");
    var stage = document.getElementById("viewer-stage");
    var presetButtons = viewer.querySelectorAll("[data-preset]");
    var preset = presetButtons.length ? presetButtons[0].getAttribute("data-preset") : "default";
    var index = 0;

    function urlOf(i) {
      var u = slices[i].url;
      return u + (u.indexOf("?") >= 0 ? "&" : "?") + "preset=" + encodeURIComponent(preset);
    }

    function showMessage(text) {
      img.hidden = true;
      message.hidden = false;
      message.textContent = text;
    }

    function show(i) {
      if (slices.length === 0) { return; }
      index = Math.max(0, Math.min(slices.length - 1, i));
      slider.value = String(index + 1);
      position.textContent = String(index + 1);
      viewer.setAttribute("data-index", String(index));
      var s = slices[index];
      if (s.error) { showMessage(s.error); return; }
      message.hidden = true;
      img.hidden = false;
      img.alt = s.label;
      img.src = urlOf(index);
      // Fetch the neighbours so scrolling feels immediate.
      [index + 1, index - 1].forEach(function (n) {
        if (n >= 0 && n < slices.length && !slices[n].error) { new Image().src = urlOf(n); }
      });
    }

    img.addEventListener("error", function () {
      var failed = index;
      fetch(urlOf(failed), { credentials: "same-origin" }).then(function (r) { return r.text(); }).then(function (t) {
        slices[failed].error = t || "This image could not be displayed (the original is stored).";
        if (index === failed) { showMessage(slices[failed].error); }
      }).catch(function () {
        if (index === failed) { showMessage("This image could not be loaded."); }
      });
    });
    slider.addEventListener("input", function () { show(parseInt(slider.value, 10) - 1); });
    stage.addEventListener("wheel", function (e) {
      e.preventDefault();
      show(index + (e.deltaY > 0 ? 1 : -1));
    }, { passive: false });
    document.addEventListener("keydown", function (e) {
      if (e.target && (e.target.tagName === "INPUT" || e.target.tagName === "TEXTAREA")) {
        if (e.target !== slider) { return; }
      }
      var step = { ArrowDown: 1, ArrowRight: 1, ArrowUp: -1, ArrowLeft: -1, PageDown: 10, PageUp: -10 }[e.key];
      if (e.key === "Home") { e.preventDefault(); show(0); return; }
      if (e.key === "End") { e.preventDefault(); show(slices.length - 1); return; }
      if (step !== undefined && e.target !== slider) { e.preventDefault(); show(index + step); }
    });
    presetButtons.forEach(function (b) {
      b.addEventListener("click", function () {
        preset = b.getAttribute("data-preset");
        presetButtons.forEach(function (o) {
          o.classList.toggle("btn-primary", o === b);
          o.setAttribute("aria-pressed", o === b ? "true" : "false");
        });
        viewer.setAttribute("data-preset", preset);
        show(index);
      });
    });
    viewer.setAttribute("data-ready", "true");
    show(0);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setupViewer);
  } else {
    setupViewer();
  }
})();
