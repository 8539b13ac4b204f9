"use strict";
// Small line charts on <canvas>, no library: voxwireCharts.draw(canvas, lines, options).
//
//   lines:   [{ values: [number | null, ...], color: "#0a7", label: "mic" }, ...]  (oldest first)
//   options: { unit: "ms", min: 0, max: null (auto), digits: 0, points: 60 (x-axis length) }
//
// The newest value of the first line is written in the top-right corner; null values break a line.
window.voxwireCharts = (() => {
  function niceCeiling(value) {
    if (!(value > 0)) return 1;
    const power = 10 ** Math.floor(Math.log10(value));
    for (const step of [1, 2, 2.5, 5, 10]) if (value <= step * power) return step * power;
    return 10 * power;
  }

  function draw(canvas, lines, { unit = "", min = 0, max = null, digits = 0, points = 60 } = {}) {
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth || canvas.width;
    const height = canvas.clientHeight || canvas.height;
    if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);

    const finite = lines.flatMap((line) => line.values).filter((v) => v !== null && Number.isFinite(v));
    const top = max !== null ? max : niceCeiling(Math.max(min, ...finite));
    const pad = { left: 2, right: 2, top: 16, bottom: 2 };
    const plotW = width - pad.left - pad.right;
    const plotH = height - pad.top - pad.bottom;
    const x = (i) => pad.left + (plotW * i) / Math.max(points - 1, 1);
    const y = (v) => pad.top + plotH * (1 - (Math.min(Math.max(v, min), top) - min) / (top - min || 1));

    ctx.strokeStyle = "rgba(128,128,128,.35)";
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(pad.left, y(top));
    ctx.lineTo(width - pad.right, y(top));
    ctx.moveTo(pad.left, y(min));
    ctx.lineTo(width - pad.right, y(min));
    ctx.stroke();

    for (const line of lines) {
      const values = line.values.slice(-points);
      const offset = points - values.length;
      ctx.strokeStyle = line.color || "#0a7";
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      let drawing = false;
      values.forEach((v, i) => {
        if (v === null || !Number.isFinite(v)) { drawing = false; return; }
        if (drawing) ctx.lineTo(x(offset + i), y(v)); else ctx.moveTo(x(offset + i), y(v));
        drawing = true;
      });
      ctx.stroke();
    }

    ctx.fillStyle = getComputedStyle(canvas).color || "#888";
    ctx.font = "11px system-ui, sans-serif";
    ctx.textBaseline = "top";
    ctx.textAlign = "left";
    ctx.fillText(`max ${top} ${unit}`.trim(), pad.left + 2, 2);
    const first = lines[0] ? lines[0].values.filter((v) => v !== null && Number.isFinite(v)) : [];
    if (first.length) {
      ctx.textAlign = "right";
      ctx.fillText(`${first[first.length - 1].toFixed(digits)} ${unit}`.trim(), width - pad.right - 2, 2);
    }
  }

  return { draw };
})();
