// The sonoflow viewer. Reads the results stream as canonical protobuf JSON
// (GET /ws?format=json: one sonoflow.v1.ServerMessage per text message; see
// docs/protocol.md), draws each JPEG video frame with the overlay from the
// FrameResult of the same frame id, vector-drawn at the canvas' own
// resolution (sharp at any size), and sends sonoflow.v1.Request messages
// back as JSON text. No build step, no dependencies.
//
// The page's state is `window.sonoflowViewer` (what tests read): frames and
// video frames seen, the caliper texts drawn per frame id, the last report,
// the last answer to a request.
"use strict";

(() => {
  const STALE_AFTER_MS = 5000; // a report older than this is marked stale
  const KEEP_RESULTS = 90; // frame results kept to match video frames
  const KEEP_DRAWN = 300; // frame ids whose drawn caliper texts are kept
  const SPARK_POINTS = 150;
  const NO_VIDEO_AFTER_MS = 1000; // no video for this long: draw on results

  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  const token = params.get("token");

  const state = {
    connected: false,
    closeReason: null,
    session: null,
    framesSeen: 0,
    videoFramesSeen: 0,
    lastFrameId: null,
    lastVideoFrameId: null,
    framesDrawn: 0,
    lastDrawnFrameId: null,
    lastCaliperText: null,
    lastCaliperFrameId: null,
    // frame id (string) -> the caliper texts drawn for it, in finding order.
    caliperTexts: {},
    lastReport: null,
    reports: [],
    lastAck: null,
    lastError: null,
    stats: null,
    latencyMs: [],
    frozen: false,
  };
  window.sonoflowViewer = state;

  // ---- numbers from canonical JSON (64-bit integers come as strings) ----
  const num = (v) => (v === undefined || v === null ? 0 : Number(v));
  const short = (name, prefix) => (name || "").replace(prefix, "").toLowerCase().replace(/_/g, " ");

  // "L 12.3 ± 0.2 mm": never a length without its uncertainty and unit
  // (the same text the burned-in overlay writes).
  function caliperText(axis, caliper) {
    const pm = Math.max(num(caliper.plusMinusMm), 0.05);
    return `${axis} ${num(caliper.lengthMm).toFixed(1)} ± ${pm.toFixed(1)} mm`;
  }
  window.sonoflowCaliperText = caliperText;

  // ---- the socket ----
  let socket = null;
  let nextRequestId = 1;

  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const query = new URLSearchParams({ format: "json" });
    if (token) query.set("token", token);
    socket = new WebSocket(`${scheme}://${location.host}/ws?${query}`);
    socket.onopen = () => {
      state.connected = true;
      state.closeReason = null;
      setConnection("live", "live");
    };
    socket.onmessage = (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch (e) {
        console.warn("not JSON from the server", e);
        return;
      }
      onMessage(message);
    };
    socket.onclose = (event) => {
      state.connected = false;
      state.closeReason = event.reason || `closed (${event.code})`;
      setConnection(state.closeReason, "bad");
      setTimeout(connect, 2000);
    };
  }

  function setConnection(text, cls) {
    const el = $("connection");
    el.textContent = text;
    el.className = `pill ${cls}`;
  }

  function send(kind, body) {
    if (!socket || socket.readyState !== WebSocket.OPEN) {
      showAnswer("not connected", true);
      return null;
    }
    const id = nextRequestId++;
    socket.send(JSON.stringify({ id: String(id), [kind]: body }));
    return id;
  }

  function onMessage(m) {
    if (m.session) onSession(m.session);
    else if (m.frame) onFrame(m.frame);
    else if (m.video) onVideo(m.video);
    else if (m.report) onReport(m.report);
    else if (m.stats) onStats(m.stats);
    else if (m.ack) {
      state.lastAck = m.ack;
      showAnswer(`${m.ack.kind}: ${m.ack.detail || "ok"}`, false);
    } else if (m.error) {
      state.lastError = m.error;
      showAnswer(`${short(m.error.code, "ERROR_CODE_")}: ${m.error.message}`, true);
    }
  }

  function showAnswer(text, isError) {
    const el = $("answer");
    el.textContent = text;
    el.className = isError ? "error" : "dim";
  }

  // ---- session ----
  function onSession(s) {
    state.session = s;
    const model = s.model || {};
    const providers = (model.providers || []).join(", ");
    const modelName = (model.dir || "").split("/").filter(Boolean).pop();
    $("session").textContent = [s.pipeline, s.device, modelName, providers, s.sonoflowVersion && `sonoflow ${s.sonoflowVersion}`]
      .filter(Boolean)
      .join(" · ");
    const select = $("prompt");
    select.replaceChildren();
    for (const p of model.prompts || []) {
      const option = document.createElement("option");
      option.value = option.textContent = p;
      select.append(option);
    }
    const head = Boolean(model.reasoning);
    for (const id of ["analyse-now", "send-prompt", "prompt"]) $(id).disabled = !head;
    if (!head) showAnswer("no reasoning head in this pipeline", false);
  }

  // ---- frames and video ----
  const results = new Map(); // frame id -> FrameResult
  let lastResult = null;
  let image = null; // the last decoded video frame
  let imageFrameId = null;
  let lastVideoAt = 0;

  function onFrame(f) {
    const id = String(num(f.frameId));
    state.framesSeen++;
    state.lastFrameId = id;
    results.set(id, f);
    if (results.size > KEEP_RESULTS) results.delete(results.keys().next().value);
    lastResult = f;
    sampleLatency(f);
    showFindings(f);
    showCalibration(f.calibration);
    showReportAge();
    if (performance.now() - lastVideoAt > NO_VIDEO_AFTER_MS) draw(f);
  }

  function onVideo(v) {
    state.videoFramesSeen++;
    state.lastVideoFrameId = String(num(v.frameId));
    lastVideoAt = performance.now();
    const img = new Image();
    img.src = `data:image/jpeg;base64,${v.jpeg || ""}`;
    img
      .decode()
      .then(() => {
        image = img;
        imageFrameId = String(num(v.frameId));
        // The overlay of this very frame when its result came; else the latest.
        draw(results.get(imageFrameId) || lastResult);
      })
      .catch((e) => console.warn("a video frame did not decode", e));
  }

  // ---- drawing ----
  const view = $("view");
  const ctx = view.getContext("2d");
  const layer = (name) => $(`layer-${name}`).checked;
  const masks = new Map(); // "frame:index" -> canvas with the mask

  function fit() {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(view.clientWidth * dpr));
    const h = Math.max(1, Math.round(view.clientHeight * dpr));
    if (view.width !== w || view.height !== h) {
      view.width = w;
      view.height = h;
    }
    return dpr;
  }

  function draw(f) {
    const dpr = fit();
    const fw = num(f ? f.width : 0) || (image ? image.naturalWidth : 0);
    const fh = num(f ? f.height : 0) || (image ? image.naturalHeight : 0);
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, view.width, view.height);
    if (!fw || !fh) return;
    const s = Math.min(view.width / fw, view.height / fh);
    const ox = (view.width - fw * s) / 2;
    const oy = (view.height - fh * s) / 2;
    ctx.setTransform(s, 0, 0, s, ox, oy);
    if (image) {
      ctx.imageSmoothingEnabled = true;
      ctx.drawImage(image, 0, 0, fw, fh);
    }
    placed.length = 0;
    if (!f) return;
    const px = dpr / s; // one CSS pixel in frame pixels
    const texts = [];
    const findings = f.findings || [];
    findings.forEach((finding, i) => {
      const colour = finding.kind === "FINDING_KIND_DETECTION" ? "#ffb300" : "#4fc3f7";
      if (layer("masks") && finding.mask) drawMask(f, finding.mask, i);
      if (layer("contours") && finding.contour && finding.contour.length >= 6) {
        const c = finding.contour;
        ctx.beginPath();
        ctx.moveTo(c[0], c[1]);
        for (let k = 2; k + 1 < c.length; k += 2) ctx.lineTo(c[k], c[k + 1]);
        ctx.closePath();
        ctx.strokeStyle = colour;
        ctx.lineWidth = 2 * px;
        ctx.stroke();
      }
      if (layer("boxes") && finding.box) {
        const b = finding.box;
        ctx.strokeStyle = colour;
        ctx.lineWidth = 1.5 * px;
        ctx.setLineDash([6 * px, 4 * px]);
        ctx.strokeRect(num(b.x0), num(b.y0), num(b.x1) - num(b.x0), num(b.y1) - num(b.y0));
        ctx.setLineDash([]);
        const score = finding.score ? ` ${(100 * finding.score).toFixed(0)} %` : "";
        label(`${finding.label || "finding"}${score}`, num(b.x0), num(b.y0) - 4 * px, px, colour, "left");
      }
      for (const [axis, caliper] of [["L", finding.longAxis], ["S", finding.shortAxis]]) {
        if (!caliper) continue;
        const text = caliperText(axis, caliper);
        if (layer("calipers")) {
          drawCaliper(caliper, text, px);
          texts.push(text);
        }
      }
    });
    const id = String(num(f.frameId));
    state.framesDrawn++;
    state.lastDrawnFrameId = id;
    state.caliperTexts[id] = texts;
    const ids = Object.keys(state.caliperTexts);
    if (ids.length > KEEP_DRAWN) delete state.caliperTexts[ids[0]];
    if (texts.length) {
      state.lastCaliperText = texts[0];
      state.lastCaliperFrameId = id;
    }
    if (!f.calibration && findings.length) {
      label("uncalibrated, no mm", 8 * px, 20 * px, px, "#ff5252", "left");
    }
  }

  function drawCaliper(c, text, px) {
    const a = c.a || {};
    const b = c.b || {};
    const ax = num(a.x), ay = num(a.y), bx = num(b.x), by = num(b.y);
    ctx.strokeStyle = "#ffffff";
    ctx.lineWidth = 1.5 * px;
    ctx.setLineDash([4 * px, 3 * px]);
    ctx.beginPath();
    ctx.moveTo(ax, ay);
    ctx.lineTo(bx, by);
    ctx.stroke();
    ctx.setLineDash([]);
    // "+" marks at both ends, as on a scanner.
    const r = 5 * px;
    ctx.lineWidth = 2 * px;
    for (const [x, y] of [[ax, ay], [bx, by]]) {
      ctx.beginPath();
      ctx.moveTo(x - r, y);
      ctx.lineTo(x + r, y);
      ctx.moveTo(x, y - r);
      ctx.lineTo(x, y + r);
      ctx.stroke();
    }
    // Beyond the end point, on the side the caliper points to.
    const right = bx >= ax;
    label(text, bx + (right ? 8 : -8) * px, by + 4 * px, px, "#ffffff", right ? "left" : "right");
  }

  // Labels drawn on this frame (frame pixels), so that none covers another.
  const placed = [];
  const overlaps = (a, b) => a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;

  // Text in CSS pixels, whatever the scale, on a dark shade; moved down
  // until it covers no label already drawn.
  function label(text, x, y, px, colour, align) {
    const size = 13 * px;
    ctx.font = `600 ${size}px system-ui, sans-serif`;
    ctx.textAlign = align;
    ctx.textBaseline = "alphabetic";
    const w = ctx.measureText(text).width;
    const x0 = align === "left" ? x : x - w;
    const box = { x: x0 - 3 * px, y: y - size, w: w + 6 * px, h: size * 1.3 };
    for (let tries = 0; tries < 8 && placed.some((p) => overlaps(p, box)); tries++) {
      box.y += box.h + px;
      y += box.h + px;
    }
    placed.push(box);
    ctx.fillStyle = "rgba(0, 0, 0, 0.6)";
    ctx.fillRect(box.x, box.y, box.w, box.h);
    ctx.fillStyle = colour;
    ctx.fillText(text, x, y);
  }

  // COCO RLE (column-major, runs alternate starting with zeros) to a canvas.
  function drawMask(f, mask, index) {
    const key = `${num(f.frameId)}:${index}`;
    let canvas = masks.get(key);
    if (!canvas) {
      const w = num(mask.width), h = num(mask.height);
      if (!w || !h) return;
      canvas = document.createElement("canvas");
      canvas.width = w;
      canvas.height = h;
      const c2 = canvas.getContext("2d");
      const data = c2.createImageData(w, h);
      let p = 0;
      let on = false;
      for (const run of mask.counts || []) {
        const n = num(run);
        if (on) {
          for (let k = p; k < p + n && k < w * h; k++) {
            const x = Math.floor(k / h), y = k % h;
            const o = 4 * (y * w + x);
            data.data[o] = 79; data.data[o + 1] = 195; data.data[o + 2] = 247; data.data[o + 3] = 90;
          }
        }
        p += n;
        on = !on;
      }
      c2.putImageData(data, 0, 0);
      masks.set(key, canvas);
      if (masks.size > 8) masks.delete(masks.keys().next().value);
    }
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(canvas, 0, 0);
    ctx.imageSmoothingEnabled = true;
  }

  for (const name of ["masks", "contours", "calipers", "boxes"]) {
    $(`layer-${name}`).addEventListener("change", () => draw(results.get(imageFrameId) || lastResult));
  }
  window.addEventListener("resize", () => draw(results.get(imageFrameId) || lastResult));

  // ---- panels ----
  function showFindings(f) {
    $("frame-id").textContent = `frame ${num(f.frameId)}`;
    const list = $("findings");
    list.replaceChildren();
    if (f.ai === "AI_VERDICT_INVALID_OUTPUT") {
      const li = document.createElement("li");
      li.textContent = "AI output invalid: nothing can be said on this frame";
      li.className = "dim";
      list.append(li);
      return;
    }
    for (const finding of f.findings || []) {
      const li = document.createElement("li");
      const parts = [finding.label || "finding"];
      if (finding.longAxis) parts.push(caliperText("L", finding.longAxis));
      if (finding.shortAxis) parts.push(caliperText("S", finding.shortAxis));
      if (finding.kind === "FINDING_KIND_DETECTION" && finding.score) parts.push(`${(100 * finding.score).toFixed(0)} %`);
      li.textContent = parts.join(" · ");
      list.append(li);
    }
    if (!list.children.length) {
      const li = document.createElement("li");
      li.className = "dim";
      li.textContent = f.ai ? "none on this frame" : "no findings rode on this frame";
      list.append(li);
    }
  }

  function showCalibration(c) {
    const el = $("calibration");
    const region = c && (c.regions || [])[0];
    const spacing = region && region.spacing;
    if (!spacing) {
      el.textContent = "uncalibrated, no mm";
      el.className = "error";
      return;
    }
    const source = short(c.source, "CALIBRATION_SOURCE_") || "unknown source";
    const u = c.uncertainty ? ` · ± ${(100 * c.uncertainty).toFixed(1)} %` : "";
    el.textContent = `${num(spacing.xMm).toFixed(4)} × ${num(spacing.yMm).toFixed(4)} mm/px · ${source}${u}`;
    el.className = "";
  }

  function onReport(r) {
    state.reports.push(r);
    if (state.reports.length > 20) state.reports.shift();
    state.lastReport = {
      keyframeId: String(num(r.keyframeId)),
      state: r.state || "",
      reason: r.reason || "",
      text: r.text || "",
      prompt: r.prompt || "",
      capturedNs: num(r.capturedNs),
    };
    const pill = $("report-state");
    const st = short(r.state, "REPORT_STATE_");
    pill.textContent = st;
    pill.className = `pill ${st}`;
    const meta = [`keyframe ${num(r.keyframeId)}`];
    if (r.reason) meta.push(`reason: ${short(r.reason, "KEYFRAME_REASON_")}`);
    if (r.prompt) meta.push(`task: ${r.prompt}`);
    if (r.tokens) meta.push(`${r.tokens} tokens`);
    if (r.truncated) meta.push("truncated");
    $("report-meta").textContent = meta.join(" · ");
    const fields = r.fields || {};
    const lines = [];
    if (fields.label || fields.impression) lines.push([fields.label, fields.impression].filter(Boolean).join(": "));
    lines.push(r.text || "");
    $("report-text").textContent = lines.filter(Boolean).join("\n");
    showReportAge();
  }

  // Age on the run's clock: the latest frame's capture time minus the keyframe's.
  function showReportAge() {
    const r = state.lastReport;
    if (!r || !lastResult) return;
    const ageMs = (num(lastResult.capturedNs) - r.capturedNs) / 1e6;
    const stale = ageMs > STALE_AFTER_MS;
    r.ageMs = ageMs;
    r.stale = stale;
    $("report-age").textContent = `${(ageMs / 1000).toFixed(1)} s ago${stale ? " · stale" : ""}`;
    $("report-age").className = stale ? "pill stale" : "dim";
    $("report-text").className = stale ? "stale" : "";
  }

  // Capture → here, without a shared clock: capture → output (the server's
  // figure) plus how much longer this message took than the fastest seen
  // (on loopback the fastest delivery is about 0 ms).
  let deliveries = [];
  function sampleLatency(f) {
    const lat = f.latencies || {};
    const toOutput = num(lat.captureToOutputMs);
    const arrival = performance.timeOrigin + performance.now();
    const delivery = arrival - num(f.capturedNs) / 1e6 - toOutput;
    deliveries.push(delivery);
    if (deliveries.length > 600) deliveries = deliveries.slice(-300);
    const fastest = Math.min(...deliveries);
    const ms = toOutput + (delivery - fastest);
    state.latencyMs.push(ms);
    if (state.latencyMs.length > SPARK_POINTS) state.latencyMs.shift();
    drawSparkline();
  }

  function drawSparkline() {
    const canvas = $("sparkline");
    const dpr = window.devicePixelRatio || 1;
    canvas.width = Math.round(canvas.clientWidth * dpr);
    canvas.height = Math.round(canvas.clientHeight * dpr);
    const c = canvas.getContext("2d");
    const values = state.latencyMs;
    if (!values.length) return;
    const sorted = [...values].sort((a, b) => a - b);
    const p50 = sorted[Math.floor(sorted.length / 2)];
    const max = sorted[sorted.length - 1];
    const top = Math.max(max * 1.1, 10);
    c.strokeStyle = "#2a3039";
    c.lineWidth = dpr;
    const y50 = canvas.height * (1 - p50 / top);
    c.beginPath();
    c.moveTo(0, y50);
    c.lineTo(canvas.width, y50);
    c.stroke();
    c.strokeStyle = "#4fc3f7";
    c.lineWidth = 1.5 * dpr;
    c.beginPath();
    values.forEach((v, i) => {
      const x = (i / (SPARK_POINTS - 1)) * canvas.width;
      const y = canvas.height * (1 - v / top);
      if (i) c.lineTo(x, y);
      else c.moveTo(x, y);
    });
    c.stroke();
    $("latency-text").textContent = `p50 ${p50.toFixed(0)} ms · max ${max.toFixed(0)} ms`;
  }

  function onStats(s) {
    state.stats = s;
    $("drop-pipeline").textContent = num(s.framesDropped);
    $("drop-results").textContent = num(s.resultsDropped);
    const me = state.session && (s.clients || []).find((c) => num(c.clientId) === num(state.session.clientId));
    $("drop-client").textContent = me ? num(me.dropped) : "–";
    $("frames-io").textContent = `${num(s.framesIn)} / ${num(s.framesOut)}`;
  }

  // ---- controls ----
  $("analyse-now").addEventListener("click", () => {
    if (send("analyseNow", {}) !== null) showAnswer("asked for a report on the next frame…", false);
  });
  $("store").addEventListener("click", () => {
    if (send("store", {}) !== null) showAnswer("asked to store the next frame as DICOM…", false);
  });
  $("send-prompt").addEventListener("click", () => {
    const text = $("prompt").value;
    if (text) send("prompt", { text });
  });
  $("freeze").addEventListener("click", () => {
    const frozen = !state.frozen;
    if (send("freeze", { frozen }) === null) return;
    // Shown frozen only once the server agrees (an ack); an error says why not.
    const onAnswer = () => {
      if (state.lastAck && state.lastAck.kind === "freeze") {
        state.frozen = frozen;
        $("freeze").textContent = frozen ? "unfreeze" : "freeze";
        $("freeze").classList.toggle("on", frozen);
      }
    };
    setTimeout(onAnswer, 500);
  });

  connect();
})();
