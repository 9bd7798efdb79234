// qmra ui: plain JavaScript, no build step, nothing loaded from other sites.
// The page keeps no results itself: the server stores them per page session; this script shows
// frames and label maps, sends boxes, starts runs and follows them over Server-Sent Events.
// State for tests and scripts is mirrored on <body data-*> (frames, frame, maskFrame, maskPixels,
// busy, job, latencyMs, exported, error).
"use strict";

const $ = (id) => document.getElementById(id);
const body = document.body;
const token = document.querySelector('meta[name="qmra-token"]').content;
const canvas = $("canvas"), ctx = canvas.getContext("2d");
const timeline = $("timeline"), tctx = timeline.getContext("2d");

let sid = null;
let config = {};
let state = null;          // the server's state of this page session
let frame = 0;             // the frame shown
let selected = null;       // the object the next box belongs to (null: a new object)
let drag = null;           // the box being drawn, in frame pixels
let pending = null;        // a box drawn whose mask is being computed: {x0, y0, x1, y1, frame, id}
let busy = false;          // a mask is being computed
let frameImage = null, maskImage = null, maskFor = null;
let loadSerial = 0;
let events = null;

// ---------------------------------------------------------------- helpers

// The overlay colours of qmra's videos (qmra.data.video_writer.OVERLAY_COLOURS): bright enough to see
// on dark and light frames; boxes get a dark edge as well.
const OVERLAY_COLOURS = [[255, 64, 64], [64, 224, 64], [64, 144, 255], [255, 208, 0], [255, 64, 255], [0, 232, 232],
                         [255, 144, 32], [168, 96, 255], [160, 255, 96], [255, 128, 176]];
const palette = (id) => OVERLAY_COLOURS[(id - 1) % OVERLAY_COLOURS.length];
const css = (rgb, a = 1) => `rgba(${rgb[0]},${rgb[1]},${rgb[2]},${a})`;

function outlinedRect(x0, y0, x1, y1, colour, line) {  // a coloured box between dark edges
  ctx.lineWidth = line + 2;
  ctx.strokeStyle = "rgba(0,0,0,0.85)";
  ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
  ctx.lineWidth = line;
  ctx.strokeStyle = css(colour);
  ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
}

function message(text, error = false) {
  $("message").textContent = text || "";
  $("message").className = error ? "error" : "";
  if (error) body.dataset.error = text;
}

async function api(path, options = {}) {
  if (!sid) throw new Error("no page session");
  const response = await fetch(`/api/s/${sid}/${path}`, options);
  let answer = {};
  try { answer = await response.json(); } catch (e) { /* not JSON */ }
  if (!response.ok) throw new Error(answer.error || `${response.status} ${response.statusText}`);
  return answer;
}
const post = (path, value) => api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(value || {}) });

function loadImage(url) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => reject(new Error(`cannot load ${url}`));
    image.src = url;
  });
}

// ---------------------------------------------------------------- state

function setState(next) {
  const old = state;
  state = next;
  const source = state.source;
  body.dataset.ready = source ? "1" : "0";
  body.dataset.frames = source ? String(source.frames) : "0";
  body.dataset.job = state.job ? state.job.status : "";
  $("empty").hidden = !!source;
  if (!source) { render(); renderObjects(); return; }
  const expected = source.expected ? ` of ${source.expected}` : "";
  const count = source.decoding ? (source.frames ? `reading frames… ${source.frames}${expected}` : "reading frames…")
    : `${source.frames} frames`;
  $("source").textContent = `${source.name}: ${source.width}×${source.height}, ${count}` + (source.error ? ` — ${source.error}` : "");
  if (canvas.width !== source.width || canvas.height !== source.height) { canvas.width = source.width; canvas.height = source.height; fit(); }
  $("slider").max = Math.max(0, source.frames - 1);
  if (!source.frames) $("frame-label").textContent = "reading frames…";
  if (!$("export-folder").value) $("export-folder").value = config.out || `${source.name}-masks`;
  if (selected !== null && !state.objects.some((o) => o.id === selected)) selected = null;
  const newVideo = !old || !old.source || old.video !== state.video;
  if (newVideo) { frame = Math.max(0, Math.min(frame, source.frames - 1)); if (old && old.video !== state.video) frame = 0; }
  const firstFrame = !newVideo && !old.source.frames && source.frames > 0;  // the first frame has just been read
  if (newVideo || firstFrame || old.version !== state.version) show(frame, true);
  renderObjects();
  renderRun();
  if (source.decoding) setTimeout(refresh, 700);
}

async function refresh() {
  try { setState(await api("state")); } catch (e) { message(e.message, true); }
}

// ---------------------------------------------------------------- showing frames

async function show(index, reload = false) {
  if (!state || !state.source) return;
  index = Math.max(0, Math.min(index, state.source.frames - 1));
  const changed = index !== frame;
  frame = index;
  $("slider").value = String(index);
  body.dataset.frame = String(index);
  const serial = ++loadSerial;
  const hasMask = state.shown && state.shown[index] === "1";
  try {
    const [image, mask] = await Promise.all([
      (!changed && !reload && frameImage) ? frameImage : loadImage(`/api/s/${sid}/frame/${index}?video=${state.video}`),
      hasMask ? loadImage(`/api/s/${sid}/mask/${index}?v=${state.version}`) : null,
    ]);
    if (serial !== loadSerial) return;  // a later frame was asked for meanwhile
    frameImage = image; maskImage = mask; maskFor = hasMask ? index : null;
    render();
    reportMask(index, mask);
  } catch (e) {
    if (serial === loadSerial) message(e.message, true);
  }
}

function reportMask(index, mask) {
  if (!mask) { body.dataset.maskFrame = ""; body.dataset.maskPixels = "0"; return; }
  const off = document.createElement("canvas");
  off.width = mask.naturalWidth; off.height = mask.naturalHeight;
  const octx = off.getContext("2d");
  octx.drawImage(mask, 0, 0);
  const data = octx.getImageData(0, 0, off.width, off.height).data;
  let pixels = 0;
  for (let i = 3; i < data.length; i += 4) if (data[i] > 0) pixels++;
  body.dataset.maskPixels = String(pixels);
  body.dataset.maskFrame = String(index);
}

function render() {
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (!state || !state.source || !frameImage) { renderTimeline(); return; }
  ctx.drawImage(frameImage, 0, 0, canvas.width, canvas.height);
  if (maskImage && maskFor === frame && $("show-masks").checked) {
    ctx.globalAlpha = 0.55;
    ctx.drawImage(maskImage, 0, 0, canvas.width, canvas.height);
    ctx.globalAlpha = 1;
  }
  const line = Math.max(2, Math.round(canvas.width / 320));
  for (const object of state.objects) {
    for (const k of object.keyframes) {
      if (k.frame !== frame) continue;
      const [x0, y0, x1, y1] = k.box;
      ctx.setLineDash([]);
      outlinedRect(x0, y0, x1, y1, object.colour, line);
      ctx.fillStyle = css(object.colour);
      ctx.font = `${Math.max(12, line * 7)}px system-ui, sans-serif`;
      ctx.fillText(String(object.id), x0 + line * 2, y0 + line * 8);
    }
  }
  // The box being drawn, or the one whose mask is being computed: drawn until its mask replaces it.
  const shown = drag || (pending && pending.frame === frame ? pending : null);
  body.dataset.pendingBox = pending && pending.frame === frame ? "1" : "0";
  if (shown) {
    const id = drag ? (selected ?? state.next_object ?? 1) : pending.id;
    ctx.lineWidth = line;
    ctx.setLineDash([line * 4, line * 3]);
    ctx.strokeStyle = css(palette(id));
    ctx.strokeRect(shown.x0, shown.y0, shown.x1 - shown.x0, shown.y1 - shown.y0);
    ctx.setLineDash([]);
  }
  const frames = state.source.frames;
  $("frame-label").textContent = frames ? `frame ${frame} (0–${frames - 1})` : "reading frames…";
  renderTimeline();
  renderHint();
}

// The canvas holds the frame at its own size; on screen it fills the stage's width (up or down),
// no taller than the window allows, its aspect ratio kept.
function fit() {
  const width = $("stage").clientWidth, height = Math.max(200, window.innerHeight - 200);
  const scale = Math.min(width / canvas.width, height / canvas.height);
  canvas.style.width = `${Math.floor(canvas.width * scale)}px`;
  canvas.style.height = `${Math.floor(canvas.height * scale)}px`;
}

function renderTimeline() {
  const width = timeline.clientWidth || 800;
  timeline.width = width;
  tctx.clearRect(0, 0, width, timeline.height);
  if (!state || !state.source || !state.source.frames) return;
  const n = state.source.frames, step = width / n;
  tctx.fillStyle = "#7fb37f";
  for (let i = 0; i < n; i++) if (state.shown && state.shown[i] === "1") tctx.fillRect(i * step, 3, Math.max(1, step), 8);
  // Frames where a mask looks wrong (it floods, spills, fades, jumps or was found again by its look): where to correct.
  tctx.fillStyle = "#e08a00";
  for (let i = 0; i < n; i++) if (state.doubtful && state.doubtful[i] === "1") tctx.fillRect(i * step, 12, Math.max(2, step), 6);
  // Frames where an object was not found (its mask empty): where a box brings it back.
  tctx.fillStyle = "#d02828";
  for (let i = 0; i < n; i++) if (state.lost && state.lost[i] === "1") tctx.fillRect(i * step, 12, Math.max(2, step), 6);
  for (const object of state.objects) {
    tctx.fillStyle = css(object.colour);
    for (const k of object.keyframes) tctx.fillRect(k.frame * step, 0, Math.max(2, step), timeline.height);
  }
  tctx.fillStyle = "#2d6cdf";
  tctx.fillRect(frame * step + step / 2 - 1, 0, 2, timeline.height);
}

function renderHint() {
  if (!state || !state.source) return;
  let text;
  if (pending) text = `Computing the mask of object ${pending.id}…`;
  else if (state.job && state.job.status === "running") text = "Running: cancel it to draw boxes.";
  else if (selected === null) text = `Drag a box close around an object (a loose box costs accuracy): it becomes object ${state.next_object}.`;
  else {
    const object = state.objects.find((o) => o.id === selected);
    const here = object && object.keyframes.some((k) => k.frame === frame);
    text = here ? `Drag to redraw object ${selected}'s box on this frame.`
      : `Drag a box to correct object ${selected} from this frame on (then run again), or press “+ New object”.`;
  }
  $("hint").textContent = text;
}

// ---------------------------------------------------------------- objects

function renderObjects() {
  const list = $("objects");
  list.textContent = "";
  if (!state) return;
  for (const object of state.objects) {
    const item = document.createElement("li");
    item.dataset.object = String(object.id);
    if (object.id === selected) item.className = "selected";
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = css(object.colour);
    item.append(swatch, `Object ${object.id}`);
    for (const k of object.keyframes) {
      const chip = document.createElement("span");
      chip.className = "keyframe";
      chip.title = `${k.mask ? "mask" : "box"} on frame ${k.frame}: go there`;
      chip.textContent = k.mask ? `f${k.frame} mask` : `f${k.frame}`;
      chip.onclick = (event) => { event.stopPropagation(); selected = object.id; renderObjects(); show(k.frame); };
      const x = document.createElement("span");
      x.className = "x";
      x.textContent = "×";
      x.title = "remove this box";
      x.onclick = (event) => { event.stopPropagation(); edit(() => post("remove", { object: object.id, frame: k.frame })); };
      chip.append(x);
      item.append(chip);
    }
    const remove = document.createElement("button");
    remove.className = "remove";
    remove.textContent = "delete";
    remove.title = `delete object ${object.id} and its masks`;
    remove.onclick = (event) => { event.stopPropagation(); edit(() => post("remove", { object: object.id })); };
    item.append(remove);
    item.onclick = () => { selected = object.id; renderObjects(); renderHint(); };
    list.append(item);
  }
  $("new-object").classList.toggle("selected", selected === null);
  renderHint();
}

async function edit(request) {
  try { setState(await request()); message(""); } catch (e) { message(e.message, true); }
}

// ---------------------------------------------------------------- drawing

function toFrame(event) {
  const rect = canvas.getBoundingClientRect();
  const x = (event.clientX - rect.left) * canvas.width / rect.width;
  const y = (event.clientY - rect.top) * canvas.height / rect.height;
  return [Math.max(0, Math.min(canvas.width, x)), Math.max(0, Math.min(canvas.height, y))];
}

function locked() { return !state || !state.source || busy || (state.job && state.job.status === "running"); }

canvas.addEventListener("pointerdown", (event) => {
  if (event.button !== 0) return;
  if (locked()) { if (busy) message("wait for the mask being computed"); return; }
  const [x, y] = toFrame(event);
  drag = { sx: x, sy: y, x0: x, y0: y, x1: x, y1: y };
  canvas.setPointerCapture(event.pointerId);
});
canvas.addEventListener("pointermove", (event) => {
  if (!drag) return;
  const [x, y] = toFrame(event);
  Object.assign(drag, { x0: Math.min(drag.sx, x), y0: Math.min(drag.sy, y), x1: Math.max(drag.sx, x), y1: Math.max(drag.sy, y) });
  render();
});
canvas.addEventListener("pointerup", async (event) => {
  if (!drag) return;
  const box = drag;
  drag = null;
  render();
  if (box.x1 - box.x0 < 3 || box.y1 - box.y0 < 3) return;  // a click, not a box
  message("");
  const drawn = performance.now();
  setBusy(true, "computing the mask" + (state.adapt_steps && state.adapt_previews ? ` (adapting: ${state.adapt_steps} steps)` : "") + "…");
  const at = frame;
  pending = { x0: box.x0, y0: box.y0, x1: box.x1, y1: box.y1, frame: at, id: selected ?? state.next_object ?? 1 };
  render();
  try {
    const answer = await post("box", { object: selected, frame: at, box: [box.x0, box.y0, box.x1, box.y1].map((v) => Math.round(v * 10) / 10) });
    selected = answer.object;
    setState(answer);
    await show(at, true);
    const latency = performance.now() - drawn;
    body.dataset.latencyMs = String(Math.round(latency));
    message(`mask of object ${answer.object} on frame ${at} in ${(latency / 1000).toFixed(1)} s`);
  } catch (e) {
    message(e.message, true);
  } finally {
    pending = null;
    setBusy(false);
    render();
  }
});

function readBase64(file) {  // a file's bytes as base64 text
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",")[1] || "");
    reader.onerror = () => reject(new Error(`cannot read ${file.name}`));
    reader.readAsDataURL(file);
  });
}

$("mask-file").addEventListener("change", async () => {
  const file = $("mask-file").files[0];
  $("mask-file").value = "";
  if (!file) return;
  if (locked()) { message(busy ? "wait for the mask being computed" : "open a video first, and wait for a run to end", true); return; }
  const at = frame;
  setBusy(true, "computing the masks…");
  try {
    const answer = await post("masks", { frame: at, name: file.name, png: await readBase64(file) });
    selected = answer.loaded[answer.loaded.length - 1];
    setState(answer);
    await show(at, true);
    message(`${file.name}: object${answer.loaded.length > 1 ? "s" : ""} ${answer.loaded.join(", ")} from its mask on frame ${at}`);
  } catch (e) {
    message(e.message, true);
  } finally {
    setBusy(false);
    render();
  }
});

function setBusy(on, text) {
  busy = on;
  body.dataset.busy = on ? "1" : "0";
  $("spinner").hidden = !on;
  if (text) $("spinner-text").textContent = text;
  canvas.classList.toggle("locked", locked());
  renderRun();
}

// ---------------------------------------------------------------- running

function renderRun() {
  const job = state && state.job;
  const running = !!job && job.status === "running";
  for (const id of ["run-both", "run-forward", "run-backward"]) $(id).disabled = running || busy || !state || !state.objects.length;
  for (const id of ["export", "export-zip"]) $(id).disabled = running || busy || !state || !state.objects.length;
  $("cancel").disabled = !running;
  canvas.classList.toggle("locked", locked());
  if (!job) { $("run-status").textContent = state && state.source ? `${state.complete} of ${state.source.frames} frames done` : ""; return; }
  $("progress").max = Math.max(1, job.total);
  $("progress").value = job.status === "finished" ? $("progress").max : job.done;
  const where = job.frame !== null ? ` · frame ${job.frame}` : "";
  const words = { running: `${job.done} / ${job.total}${where}${job.message ? " · " + job.message : ""}`,
    finished: `done in ${job.seconds.toFixed(1)} s (${job.total} frames computed); ${state.complete} of ${state.source.frames} frames have every mask`,
    cancelled: `cancelled${job.message ? ": " + job.message : ""}`, failed: `failed: ${job.message}` };
  $("run-status").textContent = words[job.status] || job.status;
}

async function run(direction) {
  message("");
  try {
    setState(await post("run", { direction }));
    follow();
  } catch (e) { message(e.message, true); }
}

function follow() {
  if (events) events.close();
  events = new EventSource(`/api/s/${sid}/events`);
  let last = 0;
  const update = (data, end) => {
    state.job = data;
    body.dataset.job = data.status;
    renderRun(); renderHint();
    const now = performance.now();
    if (end || now - last > 500) { last = now; refresh(); }  // new masks: the timeline and the frame shown
  };
  events.addEventListener("progress", (event) => update(JSON.parse(event.data), false));
  events.addEventListener("end", (event) => {
    events.close(); events = null;
    const data = JSON.parse(event.data);
    update(data, true);
    if (data.status === "failed") message(data.message, true);
  });
  events.onerror = () => {  // the stream broke off (not its end): look again, follow on if the run goes on
    if (!events) return;
    events.close(); events = null;
    setTimeout(async () => { await refresh(); if (state && state.job && state.job.status === "running" && !events) follow(); }, 1000);
  };
}

// ---------------------------------------------------------------- export

function exportOptions() {
  return { per_object: $("exp-per-object").checked, overlay: $("exp-overlay").checked, rle: $("exp-rle").checked,
           tracks: $("exp-tracks").checked,
           cutout: $("exp-cutout").checked, redact: $("exp-redact").checked, redact_style: $("exp-redact-style").value };
}

async function exportTo(zip) {
  message("");
  $("export-status").textContent = "exporting…";
  setBusy(true, "exporting…");
  try {
    const answer = zip ? await post("export-zip", exportOptions())
      : await post("export", { ...exportOptions(), folder: $("export-folder").value, overwrite: $("exp-overwrite").checked });
    const missing = answer.without_masks ? ` (${answer.without_masks} frames had no masks: written as background; run first)` : "";
    const check = answer.check && answer.check.length ? `. Check: ${answer.check.join("; ")}` : "";
    $("export-status").textContent = zip ? `${answer.name}: ${answer.files.join(", ")}${missing}${check}`
      : `wrote ${answer.files.join(", ")} to ${answer.folder}${missing}${check}`;
    body.dataset.exported = zip ? answer.name : answer.folder;
    if (zip) {
      const link = document.createElement("a");
      link.href = answer.download; link.download = answer.name;
      document.body.append(link); link.click(); link.remove();
    }
  } catch (e) {
    $("export-status").textContent = "";
    message(e.message, true);
  } finally { setBusy(false); }
}

// ---------------------------------------------------------------- opening

async function openAnswer(request) {
  setBusy(true, "opening…");
  try {
    selected = null;
    setState(await request());
    message("");
  } catch (e) { message(e.message, true); } finally { setBusy(false); }
}

$("open-form").addEventListener("submit", (event) => {
  event.preventDefault();
  openAnswer(() => post("open", { path: $("path").value }));
});
$("path").addEventListener("focus", suggest);
$("path").addEventListener("input", () => { if ($("path").value.endsWith("/")) suggest(); });

async function suggest() {
  const text = $("path").value;
  const dir = text.includes("/") ? text.slice(0, text.lastIndexOf("/") + 1) : ".";
  try {
    const listing = await api(`list?dir=${encodeURIComponent(dir)}`);
    const prefix = dir === "." ? "" : dir;
    const list = $("path-list");
    list.textContent = "";
    for (const entry of listing.entries) {
      const option = document.createElement("option");
      option.value = prefix + entry.name + (entry.kind === "folder" ? "/" : "");
      list.append(option);
    }
  } catch (e) { /* a folder outside the allowed ones: no suggestions */ }
}

$("upload").addEventListener("change", () => {
  const file = $("upload").files[0];
  if (!file) return;
  $("upload").value = "";
  if (file.size > config.max_upload_mb * 1048576) {
    message(`${file.name} is ${(file.size / 1048576).toFixed(0)} MB; uploads are limited to ${config.max_upload_mb} MB (qmra ui --max-upload)`, true);
    return;
  }
  openAnswer(() => api("upload", { method: "POST", headers: { "X-Filename": encodeURIComponent(file.name) }, body: file }));
});

// ---------------------------------------------------------------- controls

$("slider").addEventListener("input", () => show(Number($("slider").value)));
$("prev").onclick = () => show(frame - 1);
$("next").onclick = () => show(frame + 1);
$("new-object").onclick = () => { selected = null; renderObjects(); };
$("show-masks").onchange = render;
$("run-both").onclick = () => run("both");
$("run-forward").onclick = () => run("forward");
$("run-backward").onclick = () => run("backward");
$("cancel").onclick = async () => { try { setState(await post("cancel")); } catch (e) { message(e.message, true); } };
$("export").onclick = () => exportTo(false);
$("export-zip").onclick = () => exportTo(true);
timeline.addEventListener("click", (event) => {
  if (!state || !state.source) return;
  const rect = timeline.getBoundingClientRect();
  show(Math.floor((event.clientX - rect.left) / rect.width * state.source.frames));
});
document.addEventListener("keydown", (event) => {
  if (event.target.tagName === "INPUT" && event.target.type !== "range") return;
  if (event.key === "ArrowLeft") { show(frame - 1); event.preventDefault(); }
  if (event.key === "ArrowRight") { show(frame + 1); event.preventDefault(); }
});
window.addEventListener("resize", () => { fit(); renderTimeline(); });
// While the page is in view it keeps its session (the server frees sessions idle for --idle-minutes).
setInterval(() => { if (sid && document.visibilityState === "visible") api("state").catch((e) => message(e.message, true)); }, 60000);
window.addEventListener("pagehide", () => {
  if (sid) fetch(`/api/s/${sid}/close`, { method: "POST", keepalive: true });
});

// ---------------------------------------------------------------- start

(async function start() {
  try {
    const response = await fetch("/api/session", { method: "POST", headers: { "X-Qmra-Token": token } });
    const answer = await response.json();
    if (!response.ok) throw new Error(answer.error || response.statusText);
    sid = answer.session;
    config = answer;
    body.dataset.session = "1";
    setState(answer.state);
    if (answer.state.job && answer.state.job.status === "running") follow();
  } catch (e) {
    message(`cannot start: ${e.message}`, true);
  }
})();
