/* The ultrasound image page: follow uploads (pending -> ready / rejected) without a reload,
 * scrub the frames of a clip, and measure with the calibrated caliper.
 *
 * The caliper sends the clicked pixel points to the server, which computes the millimetres from
 * the file's calibration and refuses points outside one tissue region; the saved measurement is
 * recomputed from the points on the server, so nothing here decides a number.
 */
(function () {
  "use strict";

  // --- Upload status polling -----------------------------------------------------------------
  function pollRow(row) {
    var url = row.getAttribute("data-status-url");
    var tries = 0;
    function tick() {
      tries += 1;
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (data) {
          if (!data) { return; }
          if (data.status === "pending") {
            if (tries < 200) { window.setTimeout(tick, 1500); }
            return;
          }
          row.setAttribute("data-status", data.status);
          var label = row.querySelector("[data-status-label]");
          label.textContent = data.label;
          label.className = "badge " + (data.status === "ready" ? "text-bg-success" : "text-bg-danger");
          row.querySelector("[data-status-reason]").textContent = data.reason || "";
          var link = row.querySelector("[data-open-link]");
          if (data.status === "ready" && link) {
            link.href = data.url;
            link.hidden = false;
          }
        })
        .catch(function () { window.setTimeout(tick, 3000); });
    }
    window.setTimeout(tick, 800);
  }
  document.querySelectorAll("tr[data-status='pending']").forEach(pollRow);

  // --- Frames ------------------------------------------------------------------------------
  var image = document.getElementById("dicom-frame");
  var frameNumber = 1;
  var scrubber = document.getElementById("frame-scrubber");
  if (image && scrubber) {
    var urls = image.getAttribute("data-frames").split(" ");
    var shown = document.getElementById("frame-number");
    scrubber.addEventListener("input", function () {
      frameNumber = parseInt(scrubber.value, 10);
      image.src = urls[frameNumber - 1];
      image.alt = image.alt.replace(/\d+$/, String(frameNumber));
      shown.textContent = String(frameNumber);
      setFrameField();
    });
  }

  // --- Caliper -------------------------------------------------------------------------------
  var viewer = document.getElementById("dicom-viewer");
  var form = document.getElementById("image-measurement-form");
  var controls = document.getElementById("caliper-controls");
  if (!viewer || !form || !image) {
    wireStructuredReport();
    return;
  }
  var field = function (name) { return form.querySelector("[name='m-" + name + "']"); };
  var sourceText = document.getElementById("measurement-source");

  function setSource(source) {
    field("source").value = source;
    sourceText.textContent = {
      caliper: "calibrated caliper on the image",
      sr: "structured report",
      manual: "entered by hand",
    }[source];
  }
  function setFrameField() {
    if (field("frame_number")) { field("frame_number").value = String(frameNumber); }
  }

  function wireStructuredReport() {
    if (!form) { return; }
    document.querySelectorAll("[data-sr-value]").forEach(function (button) {
      button.addEventListener("click", function () {
        var input = form.querySelector("[name='m-" + button.getAttribute("data-sr-target") + "_mm']");
        input.value = button.getAttribute("data-sr-value");
        form.querySelector("[name='m-source']").value = "sr";
        var text = document.getElementById("measurement-source");
        if (text) { text.textContent = "structured report"; }
      });
    });
  }
  wireStructuredReport();

  if (!controls || viewer.getAttribute("data-calibrated") !== "true") {
    return;
  }
  var overlay = document.getElementById("caliper-overlay");
  var result = document.getElementById("caliper-result");
  var columns = parseInt(viewer.getAttribute("data-columns"), 10);
  var rows = parseInt(viewer.getAttribute("data-rows"), 10);
  var colours = { length: "#ffd400", width: "#00e5ff", depth: "#ff6bd6" };
  var points = { length: [], width: [], depth: [] };
  var csrf = form.querySelector("[name='csrfmiddlewaretoken']").value;

  function current() {
    return controls.querySelector("input[name='caliper_dimension']:checked").value;
  }

  function draw() {
    var svg = "";
    Object.keys(points).forEach(function (name) {
      var pair = points[name];
      pair.forEach(function (p) {
        svg += '<circle cx="' + p[0] + '" cy="' + p[1] + '" r="4" fill="none" stroke="' + colours[name] + '" stroke-width="2"/>';
      });
      if (pair.length === 2) {
        svg += '<line x1="' + pair[0][0] + '" y1="' + pair[0][1] + '" x2="' + pair[1][0] + '" y2="' + pair[1][1] +
          '" stroke="' + colours[name] + '" stroke-width="2" stroke-dasharray="6 3"/>';
      }
    });
    overlay.innerHTML = svg;
  }

  function complete() {
    var out = {};
    Object.keys(points).forEach(function (name) {
      if (points[name].length === 2) { out[name] = points[name]; }
    });
    return out;
  }

  function measure(name) {
    fetch(viewer.getAttribute("data-caliper-url"), {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf, Accept: "application/json" },
      body: JSON.stringify({ frame: frameNumber, points: (function () { var o = {}; o[name] = points[name]; return o; })() }),
    })
      .then(function (response) { return response.json().then(function (data) { return { ok: response.ok, data: data }; }); })
      .then(function (reply) {
        if (!reply.ok) {
          points[name] = [];
          draw();
          result.textContent = reply.data.error;
          result.className = "d-block mt-2 text-danger";
          return;
        }
        var mm = reply.data.distances[name].mm;
        field(name + "_mm").value = mm;
        if (name === "depth" && field("depth_not_measurable_reason")) {
          field("depth_not_measurable_reason").value = "";
        }
        field("caliper_points").value = JSON.stringify(complete());
        setFrameField();
        setSource("caliper");
        result.textContent = name.charAt(0).toUpperCase() + name.slice(1) + ": " + mm + " mm";
        result.className = "d-block mt-2 text-success-emphasis fw-semibold";
        var next = { length: "width", width: "depth" }[name];
        if (next && points[next].length === 0) {
          controls.querySelector("input[value='" + next + "']").checked = true;
        }
      });
  }

  image.addEventListener("click", function (event) {
    var box = image.getBoundingClientRect();
    var x = Math.round(((event.clientX - box.left) * columns / box.width) * 10) / 10;
    var y = Math.round(((event.clientY - box.top) * rows / box.height) * 10) / 10;
    var name = current();
    if (points[name].length === 2) { points[name] = []; }
    points[name].push([x, y]);
    draw();
    if (points[name].length === 2) { measure(name); }
    else { result.textContent = "First point of the " + name + " placed; click the second."; result.className = "d-block mt-2"; }
  });

  // Typing over a caliper value makes that dimension a manual value.
  ["length", "width", "depth"].forEach(function (name) {
    var input = field(name + "_mm");
    if (!input) { return; }
    input.addEventListener("input", function () {
      points[name] = [];
      draw();
      var left = complete();
      field("caliper_points").value = Object.keys(left).length ? JSON.stringify(left) : "";
      if (!Object.keys(left).length) { setSource("manual"); }
    });
  });

  document.getElementById("caliper-clear").addEventListener("click", function () {
    points = { length: [], width: [], depth: [] };
    draw();
    field("caliper_points").value = "";
    setSource("manual");
    result.textContent = "";
  });
}());
