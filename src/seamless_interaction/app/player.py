"""The synchronized dyad player: both videos, transcript, VAD lanes and feature plots on one clock.

Everything that follows playback runs in the browser, inside one HTML component: a single JavaScript
controller owns the clock (the first video), keeps the other video within a frame of it, moves the
cursor over the plots and highlights the transcript word being spoken. Streamlit only builds the
payload (:func:`build_payload`, cached by the page) and the HTML (:func:`player_html`), so playback
never waits for a rerun. Features are block-averaged to at most :data:`MAX_POINTS` points per
series, which keeps a 10-minute interaction (18,000 frames per participant) light to ship and draw.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "AU_NAMES",
    "MAX_POINTS",
    "PARTICIPANT_COLORS",
    "build_payload",
    "downsample",
    "player_html",
    "waveform_envelope",
]

MAX_POINTS = 4000  # 0.15 s per point over 10 minutes; every frame of an interaction up to 2.2 minutes
WAVE_RATE = 100  # waveform envelope bins per second (10 ms): a second zoomed in still shows syllables
PARTICIPANT_COLORS = ("#1f77b4", "#e8710a")
SERIES_COLORS = ("#1f77b4", "#e8710a", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")
# FAUValue column names as the official README lists them; the README does not say that this is
# the column order (FORMAT.md 5.3: UNKNOWN), so the UI always shows the column index next to the name.
AU_NAMES = ("InnerBrowRaiser", "OuterBrowRaiser", "BrowLowerer", "UpperLidRaiser", "CheekRaiser", "LidTightener",
            "NoseWrinkler", "UpperLipRaiser", "LipCornerPuller", "CheekPuffer", "Dimpler", "LipCornerDepressor",
            "LowerLipDepressor", "ChinRaiser", "LipPuckerer", "LipStretcher", "LipFunneler", "LipTightener",
            "LipPressor", "LipsParts", "JawDrop", "LipSuck", "JawSideways", "EyesClosed")
DEFAULT_AUS = (4, 8, 20)  # CheekRaiser, LipCornerPuller (smile), JawDrop (speech)
# Per-frame features the plots use; the Imitator v1 key first, the v4 key as a fallback.
_KEYS = {
    "valence": ("movement:emotion_valence", "movement_v4:emotion_valence"),
    "arousal": ("movement:emotion_arousal", "movement_v4:emotion_arousal"),
    "fau": ("movement:FAUValue", "movement_v4:FAUValue"),
    "head": ("movement:alignment_head_rotation", "movement_v4:alignment_head_rotation"),
    "valid": ("movement:is_valid", "movement_v4:is_valid"),
}


def downsample(values: np.ndarray, max_points: int = MAX_POINTS, valid: np.ndarray | None = None
               ) -> tuple[int, np.ndarray]:
    """Block means of ``values`` (N, k) so that at most ``max_points`` rows remain.

    Rows where ``valid`` is False are left out of the means (invalid movement blocks are zero-filled
    in the data, FORMAT.md 5.3, and would otherwise draw as real zeros); a block with no valid row
    is NaN. Returns ``(block, means)``: row ``i`` of the means covers frames ``[i*block, (i+1)*block)``.
    """
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    arr = arr.reshape(arr.shape[0], -1)
    n = arr.shape[0]
    if n == 0:
        return 1, arr
    if valid is not None:
        arr = np.where(np.asarray(valid, dtype=bool).reshape(n, 1), arr, np.nan)
    block = max(1, math.ceil(n / max_points))
    pad = (-n) % block
    if pad:
        arr = np.concatenate([arr, np.full((pad, arr.shape[1]), np.nan)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks are expected
        means = np.nanmean(arr.reshape(-1, block, arr.shape[1]), axis=1)
    return block, means


def _round_list(column: np.ndarray, digits: int = 4) -> list[float | None]:
    return [None if not np.isfinite(v) else round(float(v), digits) for v in column]


def _first_key(keys: Sequence[str], wanted: Sequence[str]) -> str | None:
    return next((k for k in wanted if k in keys), None)


def _participant_payload(p: Any, media: Mapping[str, str], au_columns: Sequence[int], max_points: int
                         ) -> dict[str, Any]:
    """Everything the player needs about one participant (``p`` is an access.Participant)."""
    out: dict[str, Any] = {"file_id": p.file_id, "short": "P" + p.file_id.rsplit("_P", 1)[1],
                           "video": media.get("mp4"), "audio": media.get("wav"), "notes": []}
    try:
        out["duration"] = round(float(p.duration_s), 3)
    except Exception as exc:  # an unreadable file must not blank the whole player
        out["duration"] = 0.0
        out["notes"].append(f"duration unknown: {exc}")
    words: list[list[Any]] = []
    segments: list[list[Any]] = []
    if p.has("json"):
        try:
            for w in p.words():
                seg = int(w.get("segment", 0))
                if not segments or segments[-1][2] != seg:
                    segments.append([round(float(w["start"]), 3), len(words), seg])
                words.append([round(float(w["start"]), 3), round(float(w["end"]), 3), str(w.get("word", "")), len(segments) - 1])
            untimed = len(p.untimed_words())
            if untimed:
                out["notes"].append(f"{untimed} transcript word(s) without timing are not shown")
            out["vad"] = [[round(float(s["start"]), 3), round(float(s["end"]), 3)] for s in p.vad_segments()
                          if s.get("start") is not None and s.get("end") is not None]
            out["annotations"] = {k: v for k, v in p.annotations().items() if v}
        except Exception as exc:
            out["notes"].append(f"metadata unreadable: {exc}")
    out["words"] = words
    out["segments"] = [[s[0], s[1]] for s in segments]
    out.setdefault("vad", [])
    out.setdefault("annotations", {})
    series: dict[str, Any] = {}
    if p.has("npz"):
        try:
            keys = p.feature_keys()
            picked = {name: _first_key(keys, cands) for name, cands in _KEYS.items()}
            wanted = [k for k in picked.values() if k]
            if wanted and p.num_frames:
                feats = p.features(wanted)
                rate = float(p.feature_rate(wanted[0]))
                valid = feats[picked["valid"]].reshape(-1) > 0.5 if picked["valid"] else None
                for name in ("valence", "arousal", "head", "fau"):
                    key = picked[name]
                    if key is None:
                        continue
                    arr = feats[key]
                    if name == "fau":
                        cols = [c for c in au_columns if c < arr.reshape(arr.shape[0], -1).shape[1]]
                        arr = arr.reshape(arr.shape[0], -1)[:, cols]
                    block, means = downsample(arr, max_points, valid if valid is not None and
                                              len(valid) == arr.shape[0] else None)
                    series[name] = {"dt": block / rate, "key": key,
                                    "cols": [_round_list(means[:, j]) for j in range(means.shape[1])]}
                    if name == "fau":
                        series[name]["names"] = [f"AU{c} {AU_NAMES[c] if c < len(AU_NAMES) else ''}".strip()
                                                 for c in cols]
            elif not wanted:
                out["notes"].append("no movement features (Imitator features exist for vendor V00 only)")
        except Exception as exc:
            out["notes"].append(f"features unreadable: {exc}")
    out["series"] = series
    if p.has("wav"):
        try:
            out["wave"] = {"rate": WAVE_RATE, "env": waveform_envelope(p)}
        except Exception as exc:
            out["notes"].append(f"waveform unreadable: {exc}")
    try:
        out["fps"] = round(float(p.frame_rate), 4) if p.frame_rate else None
    except Exception:  # the frame counter is optional; the note above already names unreadable files
        out["fps"] = None
    return out


def waveform_envelope(p: Any, rate: int = WAVE_RATE, chunk_s: float = 20.0) -> str:
    """Peak absolute amplitude per ``1/rate`` s, as base64 bytes (0-255, relative to full scale 1.0).

    Read in chunks so that a 10-minute 48 kHz WAV (115 MB of float32) never sits in memory at once.
    """
    import base64

    info = p.wav_info
    if info is None or not info.frames:
        return ""
    sr = int(info.sample_rate)
    hop = max(1, sr // rate)
    out = []
    step = int(chunk_s * sr) // hop * hop
    for a in range(0, info.frames, step):
        b = min(info.frames, a + step)
        x = np.abs(np.asarray(p.audio(a / sr, b / sr), dtype=np.float32))
        if x.ndim > 1:
            x = x.max(axis=1)
        pad = (-len(x)) % hop
        if pad:
            x = np.concatenate([x, np.zeros(pad, np.float32)])
        out.append(x.reshape(-1, hop).max(axis=1))
    env = np.clip(np.concatenate(out) * 255.0, 0, 255).astype(np.uint8) if out else np.zeros(0, np.uint8)
    return base64.b64encode(env.tobytes()).decode("ascii")


def build_payload(interaction: Any, media: Mapping[str, Mapping[str, str]], *, au_columns: Sequence[int] = DEFAULT_AUS,
                  start_s: float = 0.0, max_points: int = MAX_POINTS) -> dict[str, Any]:
    """The player's data for an ``access.Interaction``; ``media`` maps file id -> {"mp4": url, "wav": url}."""
    # File id order, as everywhere else: the first participant is partner A and the first colour.
    people = [_participant_payload(p, media.get(p.file_id, {}), au_columns, max_points)
              for p in sorted(interaction.participants, key=lambda q: q.file_id)]
    for person, color in zip(people, PARTICIPANT_COLORS):
        person["color"] = color
    duration = max([p["duration"] for p in people] + [0.0])
    return {"key": interaction.key, "duration": duration, "start": max(0.0, min(float(start_s), duration)),
            "participants": people, "colors": list(SERIES_COLORS)}


def player_html(payload: Mapping[str, Any], *, video_px: int = 340) -> str:
    """A self-contained HTML document (no network besides the media URLs) for ``st.iframe``."""
    data = json.dumps(payload, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    return _TEMPLATE.replace("__VIDEO_PX__", str(int(video_px))).replace("__PAYLOAD__", data)


_TEMPLATE = r"""<!doctype html>
<html><head><meta charset="utf-8">
<style>
:root{font-family:"Source Sans Pro","Source Sans 3",system-ui,sans-serif;font-size:14px;color:#31333f}
body{margin:0;padding:2px 4px;background:transparent}
.vids{display:flex;gap:14px}
.vcol{flex:1;min-width:0;display:flex;flex-direction:column;align-items:center}
.vwrap{position:relative;height:__VIDEO_PX__px;max-width:100%;display:flex;justify-content:center}
.vwrap video{height:100%;max-width:100%;background:#111;border-radius:8px;border:3px solid var(--c);box-sizing:border-box}
.vwrap .novid{height:100%;aspect-ratio:9/16;max-width:100%;background:#eee;border-radius:8px;border:3px dashed var(--c);
  display:flex;align-items:center;justify-content:center;text-align:center;color:#666;padding:8px;box-sizing:border-box}
.vlabel{font-weight:600;color:var(--c);margin:3px 0 0 0;font-size:13px}
.actl{display:flex;align-items:center;gap:6px;margin-top:3px;font-size:12px}
.actl button{border:1px solid #d0d3da;background:#fff;border-radius:5px;padding:1px 7px;cursor:pointer;font-size:12px}
.actl button.on{background:var(--c);border-color:var(--c);color:#fff}
.actl .vol{width:90px;accent-color:var(--c)}
.meter{display:inline-block;width:60px;height:6px;background:#eee;border-radius:3px;overflow:hidden}.meter span{display:block;height:100%;width:0;background:var(--c)}
.controls{display:flex;align-items:center;gap:8px;margin:8px 0 6px 0;flex-wrap:nowrap}
.controls button{border:1px solid #d0d3da;background:#fff;border-radius:6px;padding:4px 10px;cursor:pointer;font-size:14px;white-space:nowrap}
.controls button:hover{border-color:#ff4b4b;color:#ff4b4b}
.controls input[type=range]{flex:1;accent-color:#ff4b4b}
.controls select{border:1px solid #d0d3da;border-radius:6px;padding:3px}
#time{font-variant-numeric:tabular-nums;min-width:120px;text-align:center}
#linkbox{display:none;margin:0 0 6px 0}
#linkbox input{width:100%;box-sizing:border-box;font-size:12px;padding:3px}
.panel{position:relative;margin-top:6px;border:1px solid #e6e7eb;border-radius:6px;background:#fff;overflow:hidden}
.panel canvas{display:block;width:100%}
.cursor{position:absolute;top:0;bottom:0;width:2px;background:#ff4b4b;pointer-events:none;left:0}
.tx{display:flex;gap:14px;margin-top:6px}
.txcol{flex:1;min-width:0;height:180px;overflow-y:auto;border:1px solid #e6e7eb;border-radius:6px;padding:4px 8px;background:#fff;position:relative}
.txhead{font-weight:600;color:var(--c);font-size:12px;position:sticky;top:-4px;background:#fff;padding:2px 0}
.seg{margin:2px 0;line-height:1.5;border-left:3px solid transparent;padding-left:4px}
.seg.cur{border-left-color:var(--c);background:#fafafa}
.ts{color:#999;font-size:11px;margin-right:4px;cursor:pointer}
.w{cursor:pointer;border-radius:3px;padding:0 1px}
.w.cur{background:var(--c);color:#fff}
.empty{color:#999;font-style:italic;font-size:12px}
.txm{height:170px;overflow-y:auto;border:1px solid #e6e7eb;border-radius:6px;padding:4px 8px;background:#fff;margin-top:6px;position:relative}
.mseg{border-left:3px solid var(--c);padding:1px 6px;margin:2px 0;cursor:pointer;line-height:1.45}
.mseg b{color:var(--c);font-size:12px}.mseg.cur{background:color-mix(in srgb, var(--c) 12%, #fff)}
#help{display:none;position:fixed;inset:0;background:rgba(0,0,0,.35);z-index:10;align-items:flex-start;justify-content:center}
#help.show{display:flex}#help .hbox{background:#fff;border-radius:8px;padding:12px 18px;margin-top:40px;font-size:13px}
#help td{padding:2px 10px 2px 0}#frame{font-variant-numeric:tabular-nums;color:#666;font-size:12px;min-width:70px}
.grid2{display:flex;gap:14px}.grid2>div{flex:1;min-width:0}
</style></head>
<body>
<script id="payload" type="application/json">__PAYLOAD__</script>
<div class="vids" id="vids"></div>
<div class="controls">
  <button id="play" title="Play / pause (space)"></button>
  <button id="back" title="Back 5 s (left arrow)">&#8722;5 s</button>
  <button id="fwd" title="Forward 5 s (right arrow)">+5 s</button>
  <input type="range" id="seek" min="0" step="0.01" value="0" aria-label="Seek">
  <span id="time">0:00.0 / 0:00.0</span>
  <button id="zin" title="Zoom in the timeline (+)">+</button><button id="zout" title="Zoom out (-)">&#8722;</button><button id="zfit" title="Whole interaction (0)">Fit</button>
  <span id="frame" title="Video frame at the current time">frame 0</span>
  <select id="rate" title="Playback speed"><option>0.5</option><option selected>1</option><option>1.5</option><option>2</option></select>
  <button id="helpbtn" title="Keyboard shortcuts (?)">?</button>
  <button id="link" title="Link to this interaction at the current time"><svg width="12" height="12" viewBox="0 0 24 24"><path fill="currentColor" d="M10.6 13.4a1 1 0 0 1 0-1.4l4-4a3 3 0 1 1 4.2 4.2l-2 2-1.4-1.4 2-2a1 1 0 1 0-1.4-1.4l-4 4a1 1 0 0 1-1.4 0zm2.8-2.8a1 1 0 0 1 0 1.4l-4 4a3 3 0 1 1-4.2-4.2l2-2 1.4 1.4-2 2a1 1 0 1 0 1.4 1.4l4-4a1 1 0 0 1 1.4 0z"/></svg> Link</button>
</div>
<div id="help"><div class="hbox"><b>Keyboard shortcuts</b> (anywhere on the page)<table>
<tr><td>Space / K</td><td>play / pause</td></tr><tr><td>J / L</td><td>back / forward 5 s</td></tr>
<tr><td>&larr; / &rarr;</td><td>previous / next frame (Shift: 5 s)</td></tr><tr><td>N / P</td><td>next / previous turn</td></tr>
<tr><td>+ / - / 0</td><td>zoom the timeline in / out / whole interaction</td></tr><tr><td>?</td><td>this help</td></tr>
<tr><td>timeline</td><td>click: seek · drag: pan · wheel: zoom · Shift+wheel: pan</td></tr></table></div></div>
<div id="linkbox"><input id="linktext" readonly></div>
<div class="panel" id="lanes" title="Click: seek · drag: pan · wheel: zoom"><canvas id="lanecv" height="62"></canvas><div class="cursor"></div></div>
<div class="tx" id="tx"></div>
<div class="txm" id="txm"><div class="txhead" style="--c:#31333f">Conversation (both participants, in time order)</div></div>
<div id="charts"></div>
<script>
(function(){
const P = JSON.parse(document.getElementById('payload').textContent);
const people = P.participants, D = Math.max(P.duration, 0.001);
const ML = 44, MR = 8;
const PLAY_ICON = '<svg width="11" height="11" viewBox="0 0 10 10"><path fill="currentColor" d="M1 0l9 5-9 5z"/></svg>';
const PAUSE_ICON = '<svg width="11" height="11" viewBox="0 0 10 10"><path fill="currentColor" d="M1 0h3v10H1zM6 0h3v10H6z"/></svg>';
const fmt = t => { t = Math.max(0, t); const m = Math.floor(t/60), s = t - 60*m; return m + ':' + (s < 10 ? '0' : '') + s.toFixed(1); };

// ---- videos and the clock ------------------------------------------------------------------
const vids = document.getElementById('vids'), videos = [];
people.forEach((p, i) => {
  const col = document.createElement('div'); col.className = 'vcol'; col.style.setProperty('--c', p.color);
  const wrap = document.createElement('div'); wrap.className = 'vwrap';
  if (p.video) {
    const v = document.createElement('video');
    v.src = p.video; v.preload = 'auto'; v.playsInline = true; v.id = 'video' + i; v.dataset.fileId = p.file_id;
    v.addEventListener('error', () => { wrap.innerHTML = '<div class="novid">video cannot be played<br>(' + p.file_id + '.mp4 has no playable stream)</div>'; const k = videos.indexOf(v); if (k >= 0) videos.splice(k, 1); onReady(); });
    v.addEventListener('click', () => toggle());
    wrap.appendChild(v); videos.push(v);
  } else {
    wrap.innerHTML = '<div class="novid">no local video for<br>' + p.file_id + '</div>';
  }
  const lab = document.createElement('div'); lab.className = 'vlabel'; lab.textContent = p.file_id;
  col.appendChild(wrap); col.appendChild(lab);
  // Per-speaker audio controls: mute, solo, volume, and a level meter fed by the speaker's analyser.
  const ac = document.createElement('div'); ac.className = 'actl'; ac.id = 'actl' + i;
  if (p.audio) {
    ac.innerHTML = '<button class="mute" title="Mute ' + p.short + '">Mute</button><button class="solo" title="Solo ' + p.short +
      '">Solo</button><input type="range" class="vol" min="0" max="1.5" step="0.05" value="1" aria-label="Volume ' + p.short +
      '"><span class="meter"><span></span></span>';
  } else { ac.innerHTML = '<span class="empty">no local audio</span>'; }
  col.appendChild(ac); vids.appendChild(col);
});
// A clock for interactions without a playable video, so transcript and plots still play.
const fake = { t: 0, last: 0, paused: true, playbackRate: 1,
  get currentTime(){ if (!this.paused){ const now = performance.now()/1000; this.t = Math.min(D, this.t + (now - this.last)*this.playbackRate); this.last = now; if (this.t >= D) this.paused = true; } return this.t; },
  set currentTime(v){ this.t = v; this.last = performance.now()/1000; },
  play(){ this.paused = false; this.last = performance.now()/1000; return Promise.resolve(); }, pause(){ this.currentTime; this.paused = true; } };
// ---- audio: both WAVs through one Web Audio graph ---------------------------------------------
// element -> MediaElementSource -> gain (mute/solo/volume) -> speaker analyser -> mix analyser -> output.
// The media are same-origin, so the analysers see the real samples.
const audios = [], voices = [];
people.forEach((p, i) => { if (!p.audio) return;
  const a = document.createElement('audio'); a.src = p.audio; a.preload = 'auto'; a.id = 'audio' + i; a.dataset.fileId = p.file_id;
  a.addEventListener('error', () => { const k = audios.indexOf(a); if (k >= 0) audios.splice(k, 1);
    const c = document.getElementById('actl' + i); if (c) c.innerHTML = '<span class="empty">audio cannot be played</span>'; });
  document.body.appendChild(a); audios.push(a);
  voices.push({ i, el: a, vol: 1, muted: false, solo: false, gain: null, an: null, ctl: document.getElementById('actl' + i) }); });
let actx = null, mixAn = null;
function audioGraph(){ if (actx || !voices.length) return actx; const AC = window.AudioContext || window.webkitAudioContext; if (!AC) return null;
  actx = new AC(); mixAn = actx.createAnalyser(); mixAn.fftSize = 2048; mixAn.connect(actx.destination);
  voices.forEach(v => { const src = actx.createMediaElementSource(v.el); v.gain = actx.createGain(); v.an = actx.createAnalyser(); v.an.fftSize = 2048;
    src.connect(v.gain); v.gain.connect(v.an); v.an.connect(mixAn); });
  applyGains(); return actx; }
function applyGains(){ const solo = voices.some(v => v.solo);
  voices.forEach(v => { const g = (v.muted || (solo && !v.solo)) ? 0 : v.vol;
    if (v.gain) v.gain.gain.value = g; else v.el.volume = Math.min(1, g);
    if (v.ctl) { v.ctl.querySelector('.mute').classList.toggle('on', v.muted); v.ctl.querySelector('.solo').classList.toggle('on', v.solo);
      v.ctl.dataset.gain = g.toFixed(2); } }); }
function rms(an){ if (!an) return 0; const buf = new Float32Array(an.fftSize); an.getFloatTimeDomainData(buf);
  let s = 0; for (let k = 0; k < buf.length; k++) s += buf[k]*buf[k]; return Math.sqrt(s / buf.length); }
voices.forEach(v => { const c = v.ctl; if (!c) return;
  c.querySelector('.mute').onclick = () => { v.muted = !v.muted; applyGains(); };
  c.querySelector('.solo').onclick = () => { v.solo = !v.solo; applyGains(); };
  c.querySelector('.vol').oninput = e => { v.vol = parseFloat(e.target.value); applyGains(); }; });
applyGains();

// ---- the clock: the first video (else the first audio, else a timer); the rest follow it ----
const master = () => videos[0] || audios[0] || fake;
const followers = () => [...videos, ...audios].filter(v => v !== master());
let rate = 1;

function play(){ const ctx = audioGraph(); if (ctx && ctx.state === 'suspended') ctx.resume().catch(() => {});
  const m = master(); followers().forEach(v => { v.currentTime = m.currentTime; });
  return Promise.all([m, ...followers()].map(v => v.play().catch(e => console.warn('play', e)))); }
function pause(){ const m = master(); m.pause(); followers().forEach(v => { v.pause(); v.currentTime = m.currentTime; }); }
function seek(t){ t = Math.max(0, Math.min(D, t)); [master(), ...followers()].forEach(v => { v.currentTime = t; }); draw(true); }
function toggle(){ if (master().paused) play(); else pause(); }
function setRate(r){ rate = r; [master(), ...followers()].forEach(v => { v.playbackRate = r; }); }

// Followers chase the master: a hard seek for big gaps, a speed nudge for small ones. Audio is held
// tighter than video (a lip-sync error is heard from ~40 ms; a video frame is 33 ms).
function sync(){ const m = master(); if (m.paused) return; const t = m.currentTime;
  followers().forEach(v => { const d = v.currentTime - t, isAudio = v.tagName === 'AUDIO';
    const nudge = isAudio ? 0.012 : 0.03, jump = isAudio ? 0.2 : 0.25, k = Math.min(0.1, Math.abs(d) * 2 + 0.02);
    if (Math.abs(d) > jump) { v.currentTime = t; v.playbackRate = rate; }
    else if (Math.abs(d) > nudge) { v.playbackRate = rate * (d > 0 ? 1 - k : 1 + k); }
    else if (v.playbackRate !== rate) { v.playbackRate = rate; }
    if (v.paused && !v.ended) v.play().catch(() => {}); }); }

// ---- controls ------------------------------------------------------------------------------
const btn = document.getElementById('play'), slider = document.getElementById('seek'), tlabel = document.getElementById('time');
slider.max = D.toFixed(2);
btn.onclick = toggle;
document.getElementById('back').onclick = () => seek(master().currentTime - 5);
document.getElementById('fwd').onclick = () => seek(master().currentTime + 5);
let dragging = false;
slider.addEventListener('input', () => { dragging = true; seek(parseFloat(slider.value)); });
slider.addEventListener('change', () => { dragging = false; });
document.getElementById('rate').onchange = e => setRate(parseFloat(e.target.value));
// Keyboard, anywhere on the page (the player's frame and Streamlit's page, same origin): space or K
// play/pause, J/L -5/+5 s, arrows -/+1 frame (shift: 5 s), N/P next/previous turn, +/-/0 zoom, ? help.
const FPS = (people.find(p => p.fps) || {}).fps || 30;
function nextTurn(dir){ const t = master().currentTime, turnStarts = merged.map(m => m.start); const c = dir > 0 ? turnStarts.find(s => s > t + 0.05) : [...turnStarts].reverse().find(s => s < t - 0.3);
  if (c !== undefined) seek(c + 0.001); }
function frameStep(n){ if (!master().paused) pause(); seek((Math.round(master().currentTime * FPS) + n) / FPS + 0.0005); }
function onKey(e){ const tag = (e.target && e.target.tagName) || ''; if ((tag === 'INPUT' && e.target.type !== 'range') || tag === 'TEXTAREA' || (e.target && e.target.isContentEditable)) return;
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const k = e.key; let done = true;
  if (k === ' ' || k === 'k' || k === 'K') toggle();
  else if (k === 'j' || k === 'J') seek(master().currentTime - 5); else if (k === 'l' || k === 'L') seek(master().currentTime + 5);
  else if (k === 'ArrowLeft') { if (e.shiftKey) seek(master().currentTime - 5); else frameStep(-1); }
  else if (k === 'ArrowRight') { if (e.shiftKey) seek(master().currentTime + 5); else frameStep(1); }
  else if (k === 'n' || k === 'N') nextTurn(1); else if (k === 'p' || k === 'P') nextTurn(-1);
  else if (k === '+' || k === '=') zoomBy(0.5, master().currentTime); else if (k === '-') zoomBy(2, master().currentTime); else if (k === '0') setView(0, D);
  else if (k === '?') help.classList.toggle('show'); else if (k === 'Escape') help.classList.remove('show');
  else done = false;
  if (done) { e.preventDefault(); e.stopPropagation(); } }
document.addEventListener('keydown', onKey);
try { const top = window.parent.document; if (top !== document) { if (window.parent.__seamlessKeys) top.removeEventListener('keydown', window.parent.__seamlessKeys);
  window.parent.__seamlessKeys = onKey; top.addEventListener('keydown', onKey); } } catch (err) { /* another origin: keys work inside the player only */ }
const help = document.getElementById('help');
document.getElementById('helpbtn').onclick = () => help.classList.toggle('show');
help.onclick = () => help.classList.remove('show');
document.getElementById('link').onclick = () => {
  let base = '';
  try { base = window.parent.location.origin + window.parent.location.pathname; } catch (e) { base = document.referrer.split('?')[0]; }
  const url = base + '?interaction=' + encodeURIComponent(P.key) + '&t=' + master().currentTime.toFixed(1);
  const box = document.getElementById('linkbox'), inp = document.getElementById('linktext');
  box.style.display = 'block'; inp.value = url; inp.select();
  if (navigator.clipboard) navigator.clipboard.writeText(url).catch(() => {});
};

// ---- the timeline: one view window [V0, V1] shared by the lanes and every chart ------------------
// Wheel zooms around the pointer, drag pans, a click seeks; +/- and Fit in the controls; the window
// pages along with playback. Lanes per speaker: waveform (peak envelope), VAD, transcript segments,
// annotations (1P/3P) when present.
let V0 = 0, V1 = D; const MIN_SPAN = 0.5;
function setView(a, b){ let span = Math.max(MIN_SPAN, Math.min(D, b - a)); a = Math.max(0, Math.min(D - span, a));
  V0 = a; V1 = a + span; document.getElementById('lanes').dataset.view = V0.toFixed(3) + ',' + V1.toFixed(3); redrawAll(); }
function zoomBy(f, at){ const t = at === undefined ? (V0 + V1) / 2 : at; setView(t - (t - V0) * f, t + (V1 - t) * f); }
function xOf(t, w){ return ML + (w - ML - MR) * (t - V0) / (V1 - V0); }
function tOf(x, w){ return V0 + (x - ML) / (w - ML - MR) * (V1 - V0); }
function setupCanvas(cv, h){ const dpr = window.devicePixelRatio || 1, w = cv.parentElement.clientWidth;
  cv.width = Math.round(w*dpr); cv.height = Math.round(h*dpr); cv.style.height = h + 'px';
  const g = cv.getContext('2d'); g.setTransform(dpr, 0, 0, dpr, 0, 0); return [g, w]; }
function axisTime(g, w, h){ g.fillStyle = '#999'; g.font = '10px sans-serif'; g.textAlign = 'center'; const span = V1 - V0;
  const step = [0.1,0.2,0.5,1,2,5,10,15,30,60,120,300,600].find(s => span/s <= 10) || 600;
  for (let s = Math.ceil(V0 / step) * step; s <= V1 + 1e-6; s += step) { const x = xOf(s, w);
    g.fillText(step < 1 ? fmt(s) : fmt(s).replace(/\.0$/, ''), x, h - 2);
    g.strokeStyle = '#f0f0f0'; g.beginPath(); g.moveTo(x, 0); g.lineTo(x, h - 12); g.stroke(); } }
function decodeEnv(b64){ if (!b64) return null; const bin = atob(b64), out = new Uint8Array(bin.length);
  for (let k = 0; k < bin.length; k++) out[k] = bin.charCodeAt(k); return out; }
people.forEach(p => { p.env = p.wave ? decodeEnv(p.wave.env) : null; p.annList = [];
  Object.entries(p.annotations || {}).forEach(([kind, recs]) => (recs || []).forEach(r => {
    const a = parseFloat(r.start_ts ?? r.start), b = parseFloat(r.end_ts ?? r.end);
    if (isFinite(a) && isFinite(b)) p.annList.push([a, b, kind, String(r.annotation ?? '')]); })); });
const WAVE_H = 26, VAD_H = 9, SEG_H = 13, ANN_H = 9;
const laneH = p => WAVE_H + VAD_H + SEG_H + (p.annList.length ? ANN_H + 2 : 0) + 8;
const LANES_H = people.reduce((a, p) => a + laneH(p), 0) + 16;
const lanecv = document.getElementById('lanecv');
function drawLanes(){ const [g, w] = setupCanvas(lanecv, LANES_H); g.clearRect(0, 0, w, LANES_H); axisTime(g, w, LANES_H);
  const x0 = ML, x1 = w - MR; let y = 4;
  people.forEach((p, i) => {
    g.save(); g.beginPath(); g.rect(x0, 0, x1 - x0, LANES_H); g.clip();
    // waveform: the largest peak of the envelope bins under each pixel column
    g.fillStyle = '#f6f7f9'; g.fillRect(x0, y, x1 - x0, WAVE_H);
    if (p.env) { const rate = p.wave.rate, mid = y + WAVE_H / 2; g.fillStyle = p.color;
      for (let x = x0; x < x1; x++) { const a = Math.floor(tOf(x, w) * rate), b = Math.max(a + 1, Math.floor(tOf(x + 1, w) * rate));
        let m = 0; for (let k = Math.max(0, a); k < Math.min(p.env.length, b); k++) if (p.env[k] > m) m = p.env[k];
        const hh = Math.max(0.5, (m / 255) * (WAVE_H / 2 - 1)); g.fillRect(x, mid - hh, 1, 2 * hh); } }
    y += WAVE_H + 1;
    g.fillStyle = '#f3f4f6'; g.fillRect(x0, y, x1 - x0, VAD_H); g.fillStyle = p.color;
    p.vad.forEach(([s0, e0]) => { if (e0 < V0 || s0 > V1) return; const a = xOf(s0, w), b = xOf(e0, w); g.fillRect(a, y, Math.max(1, b - a), VAD_H); });
    y += VAD_H + 1;
    // transcript segments, with their words when there is room
    g.font = '10px sans-serif'; g.textAlign = 'left';
    p.segments.forEach(([s0, w0], si) => { const w1 = si + 1 < p.segments.length ? p.segments[si+1][1] : p.words.length;
      if (w1 <= w0) return; const e0 = p.words[w1 - 1][1]; if (e0 < V0 || s0 > V1) return;
      const a = xOf(s0, w), b = xOf(e0, w); g.fillStyle = p.color + '33'; g.fillRect(a, y, Math.max(1, b - a), SEG_H);
      g.fillStyle = '#31333f'; for (let k = w0; k < w1; k++) { const wd = p.words[k], xa = xOf(wd[0], w), xb = xOf(wd[1], w);
        if (xb < x0 || xa > x1) continue; if (g.measureText(wd[2]).width < xb - xa + 6) g.fillText(wd[2], xa + 1, y + SEG_H - 3); } });
    y += SEG_H + 1;
    if (p.annList.length) { p.annList.forEach(([a0, b0, kind]) => { if (b0 < V0 || a0 > V1) return;
        const a = xOf(a0, w), b = xOf(b0, w); g.fillStyle = kind.startsWith('1P') ? '#9467bd' : '#2ca02c';
        g.fillRect(a, y, Math.max(2, b - a), ANN_H); }); y += ANN_H + 2; }
    g.restore();
    g.fillStyle = p.color; g.font = '600 11px sans-serif'; g.textAlign = 'left'; g.fillText(p.short, 2, y - laneH(p) / 2 + 2);
    g.fillStyle = '#999'; g.font = '9px sans-serif'; g.fillText('wave/vad/tx' + (p.annList.length ? '/ann' : ''), 2, y - laneH(p) / 2 + 13);
    y += 6; }); }
// Click seeks; drag pans; wheel zooms around the pointer (horizontal wheel or shift pans).
function timeAxisEvents(el, cvOf){ let down = null, moved = false;
  el.addEventListener('mousedown', e => { down = { x: e.clientX, v0: V0, v1: V1 }; moved = false; });
  window.addEventListener('mousemove', e => { if (!down) return; const dx = e.clientX - down.x; if (Math.abs(dx) > 3) moved = true;
    if (moved) { const r = cvOf().getBoundingClientRect(), dt = dx / (r.width - ML - MR) * (down.v1 - down.v0); setView(down.v0 - dt, down.v1 - dt); } });
  window.addEventListener('mouseup', e => { if (!down) return; const wasMoved = moved; down = null;
    if (!wasMoved && e.target.closest && e.target.closest('.panel') === el) { const r = cvOf().getBoundingClientRect(); seek(tOf(e.clientX - r.left, r.width)); } });
  el.addEventListener('wheel', e => { e.preventDefault(); const r = cvOf().getBoundingClientRect();
    if (e.shiftKey || Math.abs(e.deltaX) > Math.abs(e.deltaY)) { const d = (e.shiftKey ? e.deltaY : e.deltaX) / (r.width - ML - MR) * (V1 - V0); setView(V0 + d, V1 + d); }
    else zoomBy(Math.pow(1.0015, e.deltaY), Math.max(V0, Math.min(V1, tOf(e.clientX - r.left, r.width)))); }, { passive: false }); }
timeAxisEvents(lanecv.parentElement, () => lanecv);
document.getElementById('zin').onclick = () => zoomBy(0.5, master().currentTime);
document.getElementById('zout').onclick = () => zoomBy(2, master().currentTime);
document.getElementById('zfit').onclick = () => setView(0, D);

// ---- transcript ----------------------------------------------------------------------------
const tx = document.getElementById('tx'), wordEls = [], segEls = [], boxes = [];
people.forEach((p, i) => {
  const col = document.createElement('div'); col.className = 'txcol'; col.id = 'tx' + i; col.style.setProperty('--c', p.color);
  col.innerHTML = '<div class="txhead">' + p.file_id + '</div>';
  const wEls = [], sEls = [];
  if (!p.words.length) { col.insertAdjacentHTML('beforeend', '<div class="empty">no transcript</div>'); }
  p.segments.forEach(([s0, w0], si) => {
    const seg = document.createElement('div'); seg.className = 'seg';
    const ts = document.createElement('span'); ts.className = 'ts'; ts.textContent = fmt(s0); ts.onclick = () => seek(s0);
    seg.appendChild(ts); const w1 = si + 1 < p.segments.length ? p.segments[si+1][1] : p.words.length;
    for (let k = w0; k < w1; k++) { const w = p.words[k]; const el = document.createElement('span'); el.className = 'w';
      el.textContent = w[2]; el.dataset.start = w[0]; el.dataset.end = w[1]; el.onclick = () => seek(w[0] + 0.001);
      seg.appendChild(el); seg.appendChild(document.createTextNode(' ')); wEls[k] = el; }
    col.appendChild(seg); sEls.push(seg); });
  tx.appendChild(col); wordEls.push(wEls); segEls.push(sEls); boxes.push(col);
});
// One conversation in time order: every transcript segment of both participants, coloured by speaker.
const txm = document.getElementById('txm'), merged = [];
people.forEach((p, i) => p.segments.forEach(([s0, w0], si) => {
  const w1 = si + 1 < p.segments.length ? p.segments[si+1][1] : p.words.length;
  if (w1 > w0) merged.push({ i, start: s0, end: p.words[w1 - 1][1], text: p.words.slice(w0, w1).map(w => w[2]).join(' ') }); }));
merged.sort((x, y) => x.start - y.start || x.i - y.i);
if (!merged.length) txm.insertAdjacentHTML('beforeend', '<div class="empty">no transcript</div>');
const mEls = merged.map((m, k) => { const d = document.createElement('div'); d.className = 'mseg'; d.style.setProperty('--c', people[m.i].color);
  d.dataset.who = m.i; d.innerHTML = '<span class="ts"></span><b></b> <span class="mt"></span>';
  d.querySelector('.ts').textContent = fmt(m.start); d.querySelector('b').textContent = people[m.i].short;
  d.querySelector('.mt').textContent = m.text; d.onclick = () => seek(m.start + 0.001); txm.appendChild(d); return d; });
let curMerged = [];
function updateMerged(t){ const now = []; merged.forEach((m, k) => { if (m.start <= t && t < m.end + 0.15) now.push(k); });
  if (now.join() === curMerged.join()) return; curMerged.forEach(k => mEls[k].classList.remove('cur')); now.forEach(k => mEls[k].classList.add('cur'));
  curMerged = now; txm.dataset.current = now.join(',');
  if (now.length) { const top = mEls[now[0]].offsetTop; if (top < txm.scrollTop + 10 || top > txm.scrollTop + txm.clientHeight - 30) txm.scrollTop = Math.max(0, top - 30); } }
const curWord = people.map(() => -1);
// The word being spoken: the last one started at or before t, while t is inside it (or 0.15 s after).
function wordAt(p, t){ let lo = 0, hi = p.words.length - 1, k = -1;
  while (lo <= hi) { const mid = (lo + hi) >> 1; if (p.words[mid][0] <= t) { k = mid; lo = mid + 1; } else hi = mid - 1; }
  return (k >= 0 && t < p.words[k][1] + 0.15) ? k : -1; }
function updateTranscript(t){ people.forEach((p, i) => { const k = wordAt(p, t); if (k === curWord[i]) return;
  const old = curWord[i]; if (old >= 0) { wordEls[i][old].classList.remove('cur'); segEls[i][p.words[old][3]].classList.remove('cur'); }
  curWord[i] = k; boxes[i].dataset.word = k; boxes[i].dataset.wordText = k >= 0 ? p.words[k][2] : '';
  if (k >= 0) { const el = wordEls[i][k], seg = segEls[i][p.words[k][3]]; el.classList.add('cur'); seg.classList.add('cur');
    const box = boxes[i], top = seg.offsetTop; // the box is the offset parent; scroll it, never the page
    if (top < box.scrollTop + 20 || top > box.scrollTop + box.clientHeight - 40) box.scrollTop = Math.max(0, top - 40); } }); }

// ---- feature charts ------------------------------------------------------------------------
const charts = [], chartsEl = document.getElementById('charts');
function series(p, name, col){ const s = p.series[name]; return s ? { dt: s.dt, v: s.cols[col] } : null; }
function addChart(id, title, lines, h, parent){ if (!lines.length) return;
  const div = document.createElement('div'); div.className = 'panel'; div.id = id;
  div.innerHTML = '<canvas></canvas><div class="cursor"></div>'; (parent || chartsEl).appendChild(div);
  const c = { id, title, lines, h, div, cv: div.querySelector('canvas'), cur: div.querySelector('.cursor') }; charts.push(c);
  timeAxisEvents(div, () => c.cv); }
function drawChart(c){ const [g, w] = setupCanvas(c.cv, c.h), h = c.h, bot = h - 14;
  g.clearRect(0, 0, w, h); axisTime(g, w, h);
  g.font = '600 11px sans-serif'; const titleEnd = ML + g.measureText(c.title).width + 12;
  g.font = '10px sans-serif'; const legendW = c.lines.reduce((a, l) => a + g.measureText(l.name).width + 12, 0);
  const twoRows = w - MR - legendW < titleEnd, top = twoRows ? 30 : 18;  // legend under the title when narrow
  let lo = Infinity, hi = -Infinity; c.lines.forEach(l => l.v.forEach(x => { if (x !== null) { lo = Math.min(lo, x); hi = Math.max(hi, x); } }));
  if (!isFinite(lo)) { lo = 0; hi = 1; } if (hi - lo < 1e-6) { lo -= 0.5; hi += 0.5; } const pad = (hi - lo)*0.08; lo -= pad; hi += pad;
  const y = v => bot - (bot - top) * (v - lo) / (hi - lo);
  g.fillStyle = '#999'; g.font = '10px sans-serif'; g.textAlign = 'right';
  [lo + pad, hi - pad].forEach(v => g.fillText(v.toFixed(2), ML - 4, y(v) + 3));
  if (lo < 0 && hi > 0) { g.strokeStyle = '#ddd'; g.beginPath(); g.moveTo(ML, y(0)); g.lineTo(w - MR, y(0)); g.stroke(); }
  c.lines.forEach(l => { g.strokeStyle = l.color; g.lineWidth = 1.4; g.setLineDash(l.dash ? [4, 3] : []); g.beginPath(); let pen = false;
    g.save(); g.beginPath(); g.rect(ML, 0, w - ML - MR, h); g.clip(); g.beginPath();
    const i0 = Math.max(0, Math.floor(V0 / l.dt) - 1), i1 = Math.min(l.v.length, Math.ceil(V1 / l.dt) + 1);
    l.v.slice(i0, i1).forEach((v, j) => { const i = i0 + j; if (v === null) { pen = false; return; } const X = xOf((i + 0.5) * l.dt, w), Y = y(v);
      if (pen) g.lineTo(X, Y); else { g.moveTo(X, Y); pen = true; } }); g.stroke(); g.restore(); });
  g.setLineDash([]); g.fillStyle = '#31333f'; g.font = '600 11px sans-serif'; g.textAlign = 'left'; g.fillText(c.title, ML, 11);
  let lx = w - MR; const ly = twoRows ? 23 : 11; g.font = '10px sans-serif'; g.textAlign = 'right';
  c.lines.slice().reverse().forEach(l => { g.fillStyle = l.color; g.fillText(l.name, lx, ly); lx -= g.measureText(l.name).width + 12; }); }
['valence', 'arousal'].forEach(name => {
  const lines = []; people.forEach((p, i) => { const s = series(p, name, 0); if (s) lines.push({ ...s, color: p.color, name: p.short }); });
  addChart('chart-' + name, 'Emotion ' + name, lines, 110); });
const row = (id) => { const d = document.createElement('div'); d.className = 'grid2'; d.id = id; chartsEl.appendChild(d); return d; };
const auRow = row('au-row'), headRow = row('head-row');
people.forEach((p, i) => { const s = p.series.fau; if (!s) return;
  addChart('chart-au-' + i, 'Facial action units · ' + p.short, s.cols.map((v, j) => ({ dt: s.dt, v, color: P.colors[(j + 2) % P.colors.length], name: s.names[j] })), 124, auRow); });
people.forEach((p, i) => { const s = p.series.head; if (!s) return;
  addChart('chart-head-' + i, 'Head rotation · ' + p.short, s.cols.map((v, j) => ({ dt: s.dt, v, color: P.colors[(j + 2) % P.colors.length], name: 'rot[' + j + ']' })), 124, headRow); });
if (!charts.length) chartsEl.insertAdjacentHTML('beforeend', '<div class="empty" style="margin-top:6px">No per-frame movement features for this interaction (they exist for vendor V00 only).</div>');

// ---- the loop ------------------------------------------------------------------------------
function placeCursor(el, t){ const w = el.clientWidth, x = xOf(t, w), cur = el.querySelector('.cursor'); cur.style.left = (x - 1) + 'px';
  cur.style.display = (t < V0 || t > V1) ? 'none' : '';
  el.dataset.cursorX = x.toFixed(1); el.dataset.t = t.toFixed(3); }
let lastT = -1; const frameEl = document.getElementById('frame');
function draw(force){ const t = master().currentTime;
  if (!force && Math.abs(t - lastT) < 1e-4) return; lastT = t;
  if (!master().paused && (t > V1 || t < V0) && V1 - V0 < D) { const span = V1 - V0; setView(t - 0.1 * span, t + 0.9 * span); return; }
  if (!dragging) slider.value = t.toFixed(2);
  tlabel.textContent = fmt(t) + ' / ' + fmt(D); frameEl.textContent = 'frame ' + Math.floor(t * FPS + 1e-6);
  const paused = master().paused; if (btn.dataset.paused !== String(paused)) { btn.dataset.paused = String(paused);
    btn.innerHTML = paused ? PLAY_ICON + ' Play' : PAUSE_ICON + ' Pause'; }
  placeCursor(document.getElementById('lanes'), t); charts.forEach(c => placeCursor(c.div, t));
  updateTranscript(t); updateMerged(t); document.body.dataset.t = t.toFixed(3); }
function redrawAll(){ drawLanes(); charts.forEach(drawChart); draw(true); }
function meters(){ if (!actx) return; voices.forEach(v => { const bar = v.ctl && v.ctl.querySelector('.meter span');
  if (bar) bar.style.width = Math.min(100, rms(v.an) * 300).toFixed(0) + '%'; }); }
function loop(){ sync(); draw(false); meters(); requestAnimationFrame(loop); }
[...videos, ...audios].forEach(v => { v.addEventListener('pause', () => draw(true)); v.addEventListener('play', () => draw(true));
  v.addEventListener('ended', () => { if (v === master()) pause(); }); v.addEventListener('seeked', () => draw(true)); });
window.addEventListener('resize', redrawAll);
let ready = 0, started = false; function onReady(){ ready += 1; if (!started && ready >= videos.length) { started = true; if (P.start > 0) seek(P.start); document.body.dataset.ready = '1'; } }
videos.forEach(v => { if (v.readyState >= 1) onReady(); else v.addEventListener('loadedmetadata', onReady, { once: true }); });
if (!videos.length) { if (P.start > 0) fake.currentTime = P.start; document.body.dataset.ready = '1'; }
window.seamlessPlayer = { play, pause, seek, toggle, setRate, view: () => [V0, V1], setView, time: () => master().currentTime, videos, audios, payload: P,
  audio: { context: () => actx, mix: () => mixAn, level: () => rms(mixAn), levels: () => voices.map(v => rms(v.an)), voices } };
redrawAll(); requestAnimationFrame(loop);
})();
</script>
</body></html>
"""
