// Colour+alpha unpacking for vstage's live streams, shared by the overlays (live.js) and the
// /talk page (talk.js).
//
// VP8 has no alpha channel, so the server packs each avatar frame twice side by side (width
// 2*W): the left half is its colour, the right half its alpha as grey. PackedCanvas draws such
// a frame from a <video> into a canvas of width W with the transparency put back: in WebGL when
// the browser has it (one texture upload and a two-tap shader per frame), else on the CPU.
//
// An ES module; live.js, a classic script, loads it with a dynamic import().

const VERTEX = `
  attribute vec2 pos;
  varying vec2 uv;
  void main() {
    uv = vec2((pos.x + 1.0) * 0.5, (1.0 - pos.y) * 0.5);
    gl_Position = vec4(pos, 0.0, 1.0);
  }`;

// Left half: colour; right half: alpha as grey. Lossy coding leaves a little noise in the
// alpha around 0 and 1: snap it so the background stays fully transparent.
const FRAGMENT = `
  precision mediump float;
  uniform sampler2D tex;
  varying vec2 uv;
  void main() {
    vec3 rgb = texture2D(tex, vec2(uv.x * 0.5, uv.y)).rgb;
    float a = texture2D(tex, vec2(0.5 + uv.x * 0.5, uv.y)).r;
    a = clamp((a - 0.04) / 0.92, 0.0, 1.0);
    gl_FragColor = vec4(rgb * a, a);
  }`;

/** Draws packed colour|alpha frames into a canvas: WebGL when available, else a 2D canvas. */
export class PackedCanvas {
  /** @param {HTMLCanvasElement} canvas where the unpacked avatar is drawn */
  constructor(canvas) {
    this.canvas = canvas;
    this.gl = null;
    try {
      this.gl = canvas.getContext("webgl", { alpha: true, premultipliedAlpha: true,
        antialias: false, preserveDrawingBuffer: true });
    } catch (err) {
      this.gl = null;
    }
    if (this.gl) this._setupGl();
    else this.ctx = canvas.getContext("2d");
    /** "webgl" or "2d": which path draws (tests check the fast one is used). */
    this.kind = this.gl ? "webgl" : "2d";
  }

  _setupGl() {
    const gl = this.gl;
    const shader = (type, src) => {
      const s = gl.createShader(type);
      gl.shaderSource(s, src);
      gl.compileShader(s);
      if (!gl.getShaderParameter(s, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(s));
      return s;
    };
    const prog = gl.createProgram();
    gl.attachShader(prog, shader(gl.VERTEX_SHADER, VERTEX));
    gl.attachShader(prog, shader(gl.FRAGMENT_SHADER, FRAGMENT));
    gl.linkProgram(prog);
    gl.useProgram(prog);
    const buf = gl.createBuffer();
    gl.bindBuffer(gl.ARRAY_BUFFER, buf);
    gl.bufferData(gl.ARRAY_BUFFER, new Float32Array([-1, -1, 1, -1, -1, 1, 1, 1]),
                  gl.STATIC_DRAW);
    const loc = gl.getAttribLocation(prog, "pos");
    gl.enableVertexAttribArray(loc);
    gl.vertexAttribPointer(loc, 2, gl.FLOAT, false, 0, 0);
    const tex = gl.createTexture();
    gl.bindTexture(gl.TEXTURE_2D, tex);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.LINEAR);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.LINEAR);
    gl.clearColor(0, 0, 0, 0);
  }

  _size(w, h) {
    if (this.canvas.width !== w || this.canvas.height !== h) {
      this.canvas.width = w;
      this.canvas.height = h;
      if (this.gl) this.gl.viewport(0, 0, w, h);
    }
  }

  /**
   * Draw the video's current frame.
   * @param {HTMLVideoElement} video playing the packed stream
   * @returns {boolean} false while the video has no picture yet
   */
  draw(video) {
    const w = Math.floor(video.videoWidth / 2);
    const h = video.videoHeight;
    if (!w || !h) return false;
    this._size(w, h);
    if (this.gl) {
      const gl = this.gl;
      gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGB, gl.RGB, gl.UNSIGNED_BYTE, video);
      gl.clear(gl.COLOR_BUFFER_BIT);
      gl.drawArrays(gl.TRIANGLE_STRIP, 0, 4);
      return true;
    }
    // No WebGL: unpack on the CPU (slower, same picture).
    if (!this.scratch) {
      this.scratch = document.createElement("canvas");
      this.sctx = this.scratch.getContext("2d", { willReadFrequently: true });
    }
    this.scratch.width = 2 * w;
    this.scratch.height = h;
    this.sctx.drawImage(video, 0, 0);
    const packed = this.sctx.getImageData(0, 0, 2 * w, h).data;
    const out = this.ctx.createImageData(w, h);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const o = (y * w + x) * 4;
        const c = (y * 2 * w + x) * 4;
        const a = (y * 2 * w + x + w) * 4;
        out.data[o] = packed[c];
        out.data[o + 1] = packed[c + 1];
        out.data[o + 2] = packed[c + 2];
        out.data[o + 3] = Math.max(0, Math.min(255, (packed[a] - 10) * 1.087));
      }
    }
    this.ctx.putImageData(out, 0, 0);
    return true;
  }
}
