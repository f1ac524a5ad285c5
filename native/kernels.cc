// Native training kernels for the wasm backend: 2-D convolution (forward, input gradient, filter
// gradient) over NHWC float32 tensors that live in the wasm heap. The wasm build of XNNPACK has
// 128-bit SIMD without FMA and is tuned for inference; at this model's shapes (few channels, wide
// maps) its convolutions reach a few GFLOP/s. These loops use the host's vector unit directly.
//
// Single-threaded, like the rest of a trainer process (one worker per core). Every sum runs in a
// fixed order that does not depend on the machine's vector width, so a result is the same on any
// x86-64 box the addon is built on with the same compiler flags (see native/build.mjs).
//
// Layouts: x [B, H, W, C]; filter [KH, KW, C, O] (TF.js/Keras HWIO); output [B, Ho, Wo, O].
// Stride 1, dilation 1; padding is explicit (top, left; bottom and right follow from the sizes).
#include <node_api.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <vector>

namespace {

typedef float v8 __attribute__((vector_size(32)));
constexpr int L = 8;  // lanes per vector

inline v8 load(const float* p) {
  v8 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store(float* p, v8 v) { std::memcpy(p, &v, sizeof v); }
inline v8 splat(float s) { return v8{s, s, s, s, s, s, s, s}; }

struct Buffer {  // zero-initialised scratch memory
  float* p = nullptr;
  explicit Buffer(size_t n) : p(static_cast<float*>(std::calloc(n ? n : 1, sizeof(float)))) {
    if (!p) throw std::bad_alloc();
  }
  ~Buffer() { std::free(p); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
};

inline size_t roundUp(size_t n, size_t m) { return (n + m - 1) / m * m; }

void padInto(const float* x, int B, int H, int W, int C, float* xp, int Hp, int Wp, int top, int left);

// x itself when it already is [B,Hp,Wp,C] with no offset, else a padded copy held by `hold`.
const float* paddedInput(const float* x, int B, int H, int W, int C, int Hp, int Wp, int top, int left,
                         std::unique_ptr<Buffer>& hold) {
  if (top == 0 && left == 0 && Hp == H && Wp == W) return x;
  hold.reset(new Buffer(size_t(B) * Hp * Wp * C));
  padInto(x, B, H, W, C, hold->p, Hp, Wp, top, left);
  return hold->p;
}

// x [B,H,W,C] into a zeroed [B,Hp,Wp,C] at offset (top, left). Rows that fall outside are dropped
// (negative padding crops).
void padInto(const float* x, int B, int H, int W, int C, float* xp, int Hp, int Wp, int top, int left) {
  for (int b = 0; b < B; b++)
    for (int y = 0; y < H; y++) {
      int yp = y + top;
      if (yp < 0 || yp >= Hp) continue;
      int x0 = 0, x1 = W;
      if (left < 0) x0 = -left;
      if (x1 + left > Wp) x1 = Wp - left;
      if (x1 <= x0) continue;
      std::memcpy(xp + ((size_t(b) * Hp + yp) * Wp + x0 + left) * C, x + ((size_t(b) * H + y) * W + x0) * C,
                  size_t(x1 - x0) * C * sizeof(float));
    }
}

// ---- forward: a 'valid' conv of an already padded input ------------------------------------------

// XT output columns x OV vectors of output channels, accumulated in registers over (i, j, c).
template <int XT, int OV>
inline void convTile(const float* xr, size_t rowStride, int KH, int KWC, int C, const float* w, size_t wRow,
                     size_t wStride, const float* bias, float* out, size_t outStride, int O, bool relu) {
  v8 acc[XT][OV];
  for (int v = 0; v < OV; v++) {
    v8 b0 = bias ? load(bias + v * L) : splat(0.f);
    for (int t = 0; t < XT; t++) acc[t][v] = b0;
  }
  for (int i = 0; i < KH; i++) {
    const float* xi = xr + i * rowStride;
    const float* wi = w + i * wRow;
    for (int k = 0; k < KWC; k++) {
      v8 wv[OV];
      for (int v = 0; v < OV; v++) wv[v] = load(wi + k * wStride + v * L);
      for (int t = 0; t < XT; t++) {
        v8 s = splat(xi[t * C + k]);
        for (int v = 0; v < OV; v++) acc[t][v] += s * wv[v];
      }
    }
  }
  for (int t = 0; t < XT; t++)
    for (int v = 0; v < OV; v++) {
      v8 a = acc[t][v];
      if (relu) a = a < 0.f ? 0.f : a;  // NaN stays NaN, as in tfjs' relu
      float* o = out + t * outStride + v * L;
      int left = O - v * L;
      if (left >= L) store(o, a);
      else
        for (int l = 0; l < left; l++) o[l] = a[l];
    }
}

// One group of OV output-channel vectors over a whole output row, XT columns at a time.
template <int XT, int OV>
void convRow(const float* xr, size_t rowStride, int KH, int KW, int C, const float* w, size_t wRow, size_t wStride,
             const float* bias, float* out, int Wo, int oStride, int remain, bool relu) {
  int x = 0;
  for (; x + XT <= Wo; x += XT)
    convTile<XT, OV>(xr + size_t(x) * C, rowStride, KH, KW * C, C, w, wRow, wStride, bias, out + size_t(x) * oStride,
                     oStride, remain, relu);
  for (; x < Wo; x++)
    convTile<1, OV>(xr + size_t(x) * C, rowStride, KH, KW * C, C, w, wRow, wStride, bias, out + size_t(x) * oStride,
                    oStride, remain, relu);
}

// out = conv(xp, w) + bias (ReLU optional). xp [B,Hp,Wp,C] padded; w [KH,KW,C,Op] with Op a
// multiple of 8 (zero past O); bias null or Op long.
void convValid(const float* xp, int B, int Hp, int Wp, int C, const float* w, int KH, int KW, int Op, const float* bias,
               float* out, int O, bool relu) {
  const int Ho = Hp - KH + 1, Wo = Wp - KW + 1;
  const size_t rowStride = size_t(Wp) * C;
  const size_t wRow = size_t(KW) * C * Op;
  for (int b = 0; b < B; b++)
    for (int y = 0; y < Ho; y++) {
      const float* xr = xp + (size_t(b) * Hp + y) * rowStride;
      float* orow = out + (size_t(b) * Ho + y) * Wo * O;
      int o = 0;
      for (; o + 4 * L <= Op; o += 4 * L)
        convRow<3, 4>(xr, rowStride, KH, KW, C, w + o, wRow, Op, bias ? bias + o : nullptr, orow + o, Wo, O, O - o, relu);
      for (; o + 2 * L <= Op; o += 2 * L)
        convRow<6, 2>(xr, rowStride, KH, KW, C, w + o, wRow, Op, bias ? bias + o : nullptr, orow + o, Wo, O, O - o, relu);
      for (; o < Op; o += L)
        convRow<8, 1>(xr, rowStride, KH, KW, C, w + o, wRow, Op, bias ? bias + o : nullptr, orow + o, Wo, O, O - o, relu);
    }
}

// Copies [KH,KW,C,O] to [KH,KW,C,Op] (zero past O); with flip, w'[i][j][o][c] = w[KH-1-i][KW-1-j][c][o]
// as [KH,KW,O,Cp] (the input gradient's filter).
std::vector<float> paddedFilter(const float* w, int KH, int KW, int C, int O, bool flip, int* outLanes) {
  const int inner = flip ? C : O, outer = flip ? O : C;
  const int P = int(roundUp(inner, L));
  std::vector<float> r(size_t(KH) * KW * outer * P, 0.f);
  for (int i = 0; i < KH; i++)
    for (int j = 0; j < KW; j++)
      for (int c = 0; c < C; c++)
        for (int o = 0; o < O; o++) {
          float v = w[((size_t(i) * KW + j) * C + c) * O + o];
          if (flip) r[((size_t(KH - 1 - i) * KW + (KW - 1 - j)) * O + o) * P + c] = v;
          else r[((size_t(i) * KW + j) * C + c) * P + o] = v;
        }
  *outLanes = P;
  return r;
}

void conv2d(const float* x, int B, int H, int W, int C, const float* w, int KH, int KW, int O, const float* bias,
            float* out, int Ho, int Wo, int top, int left, bool relu) {
  const int Hp = Ho + KH - 1, Wp = Wo + KW - 1;
  int Op;
  std::vector<float> wp = paddedFilter(w, KH, KW, C, O, false, &Op);
  std::vector<float> bp;
  if (bias) {
    bp.assign(Op, 0.f);
    std::memcpy(bp.data(), bias, size_t(O) * sizeof(float));
  }
  std::unique_ptr<Buffer> padded;
  const float* src = paddedInput(x, B, H, W, C, Hp, Wp, top, left, padded);
  convValid(src, B, Hp, Wp, C, wp.data(), KH, KW, Op, bias ? bp.data() : nullptr, out, O, relu);
}

// dx [B,H,W,C] from dy [B,Ho,Wo,O]: a 'valid' conv of dy padded by (K-1-pad) with the flipped,
// channel-swapped filter.
void conv2dInputGrad(const float* dy, int B, int Ho, int Wo, int O, const float* w, int KH, int KW, int C, float* dx,
                     int H, int W, int top, int left) {
  int Cp;
  std::vector<float> wf = paddedFilter(w, KH, KW, C, O, true, &Cp);
  const int Hp = H + KH - 1, Wp = W + KW - 1;
  Buffer padded(size_t(B) * Hp * Wp * O);
  padInto(dy, B, Ho, Wo, O, padded.p, Hp, Wp, KH - 1 - top, KW - 1 - left);
  convValid(padded.p, B, Hp, Wp, O, wf.data(), KH, KW, Cp, nullptr, dx, C, false);
}

// ---- filter gradient ----------------------------------------------------------------------------

// dW[i][k][o] (k = j*C + c) over one output row: CT consecutive k by OV vectors of o, summed over
// the row's Wo columns in registers, then added to the double accumulator.
template <int CT, int OV>
inline void filterTile(const float* xi, int C, const float* dyr, int Wo, int Op, double* acc) {
  v8 a[CT][OV];
  for (int t = 0; t < CT; t++)
    for (int v = 0; v < OV; v++) a[t][v] = splat(0.f);
  for (int x = 0; x < Wo; x++) {
    v8 d[OV];
    for (int v = 0; v < OV; v++) d[v] = load(dyr + size_t(x) * Op + v * L);
    const float* xs = xi + size_t(x) * C;
    for (int t = 0; t < CT; t++) {
      v8 s = splat(xs[t]);
      for (int v = 0; v < OV; v++) a[t][v] += s * d[v];
    }
  }
  for (int t = 0; t < CT; t++)
    for (int v = 0; v < OV; v++)
      for (int l = 0; l < L; l++) acc[size_t(t) * Op + v * L + l] += a[t][v][l];
}

template <int CT, int OV>
void filterRow(const float* xi, int KWC, int C, const float* dyr, int Wo, int Op, int o, double* acc) {
  int k = 0;
  for (; k + CT <= KWC; k += CT) filterTile<CT, OV>(xi + k, C, dyr + o, Wo, Op, acc + size_t(k) * Op + o);
  for (; k < KWC; k++) filterTile<1, OV>(xi + k, C, dyr + o, Wo, Op, acc + size_t(k) * Op + o);
}

// dW [KH,KW,C,O] = sum over b, y, x of xPad[b, y+i, x+j, c] * dy[b, y, x, o].
void conv2dFilterGrad(const float* x, int B, int H, int W, int C, const float* dy, int Ho, int Wo, int O, int KH,
                      int KW, float* dw, int top, int left) {
  const int Hp = Ho + KH - 1, Wp = Wo + KW - 1;
  std::unique_ptr<Buffer> padded, dyPadded;
  const float* src = paddedInput(x, B, H, W, C, Hp, Wp, top, left, padded);
  const int Op = int(roundUp(O, L));
  const float* g = dy;
  if (Op != O) {
    dyPadded.reset(new Buffer(size_t(B) * Ho * Wo * Op));
    for (size_t p = 0; p < size_t(B) * Ho * Wo; p++) std::memcpy(dyPadded->p + p * Op, dy + p * O, size_t(O) * sizeof(float));
    g = dyPadded->p;
  }
  const int KWC = KW * C;
  std::vector<double> acc(size_t(KH) * KWC * Op, 0.0);
  const size_t rowStride = size_t(Wp) * C;
  for (int b = 0; b < B; b++)
    for (int y = 0; y < Ho; y++) {
      const float* dyr = g + (size_t(b) * Ho + y) * Wo * Op;
      for (int i = 0; i < KH; i++) {
        const float* xi = src + (size_t(b) * Hp + y + i) * rowStride;
        double* ai = acc.data() + size_t(i) * KWC * Op;
        int o = 0;
        for (; o + 2 * L <= Op; o += 2 * L) filterRow<4, 2>(xi, KWC, C, dyr, Wo, Op, o, ai);
        for (; o < Op; o += L) filterRow<8, 1>(xi, KWC, C, dyr, Wo, Op, o, ai);
      }
    }
  for (size_t r = 0; r < size_t(KH) * KWC; r++)
    for (int o = 0; o < O; o++) dw[r * O + o] = float(acc[r * Op + o]);
}

// ---- max-pool gradient --------------------------------------------------------------------------

// dx[argmax of each window] += dy[window]; the argmax is the first strict maximum in row-major
// window order (NaN never wins; a window of NaNs passes nothing), as the cpu backend picks it.
void maxPoolGrad(const float* x, const float* dy, float* dx, int B, int H, int W, int C, int Ho, int Wo, int fh, int fw,
                 int sh, int sw, int top, int left) {
  std::memset(dx, 0, size_t(B) * H * W * C * sizeof(float));
  const size_t rowStride = size_t(W) * C;
  std::vector<float> best(C);
  std::vector<ptrdiff_t> where(C);
  size_t o = 0;
  for (int b = 0; b < B; b++)
    for (int yr = 0; yr < Ho; yr++) {
      const int r0 = yr * sh - top;
      const int rFrom = r0 < 0 ? -r0 : 0, rTo = fh < H - r0 ? fh : H - r0;
      for (int yc = 0; yc < Wo; yc++, o += C) {
        const int c0 = yc * sw - left;
        const int cFrom = c0 < 0 ? -c0 : 0, cTo = fw < W - c0 ? fw : W - c0;
        for (int d = 0; d < C; d++) {
          best[d] = -__builtin_inff();
          where[d] = -1;
        }
        for (int wr = rFrom; wr < rTo; wr++)
          for (int wc = cFrom; wc < cTo; wc++) {
            const ptrdiff_t i = ptrdiff_t((size_t(b) * H + r0 + wr) * rowStride + size_t(c0 + wc) * C);
            for (int d = 0; d < C; d++) {
              const float v = x[i + d];
              if (v > best[d]) {
                best[d] = v;
                where[d] = i + d;
              }
            }
          }
        for (int d = 0; d < C; d++)
          if (where[d] >= 0) dx[where[d]] += dy[o + d];
      }
    }
}

// ---- per-channel elementwise ops ----------------------------------------------------------------

// y = (x - mean) * rsqrt(variance + eps) * scale + offset over n rows of C channels, each parameter
// C long (scale, offset optional), as tfjs computes it: the factor is formed per channel first.
void batchNorm(const float* x, const float* mean, const float* variance, const float* offset, const float* scale,
               float eps, float* y, size_t n, int C) {
  std::vector<float> k(C), m(C), off(C);
  for (int c = 0; c < C; c++) {
    float inv = 1.f / __builtin_sqrtf(variance[c] + eps);
    k[c] = scale ? inv * scale[c] : inv;
    m[c] = mean[c];
    off[c] = offset ? offset[c] : 0.f;
  }
  for (size_t r = 0; r < n; r++) {
    const float* xr = x + r * C;
    float* yr = y + r * C;
    for (int c = 0; c < C; c++) yr[c] = (xr[c] - m[c]) * k[c] + off[c];
  }
}

// out = a op v (or v op a when vFirst) with v broadcast along n rows of C channels.
enum BinaryOp { ADD = 0, SUB = 1, MUL = 2, DIV = 3 };
template <int OP>
void channelBinaryOp(const float* a, const float* v, float* out, size_t n, int C, bool vFirst) {
  for (size_t r = 0; r < n; r++) {
    const float* ar = a + r * C;
    float* orow = out + r * C;
    for (int c = 0; c < C; c++) {
      const float p = vFirst ? v[c] : ar[c], q = vFirst ? ar[c] : v[c];
      orow[c] = OP == ADD ? p + q : OP == SUB ? p - q : OP == MUL ? p * q : p / q;
    }
  }
}

void channelBinary(int op, const float* a, const float* v, float* out, size_t n, int C, bool vFirst) {
  switch (op) {
    case ADD: return channelBinaryOp<ADD>(a, v, out, n, C, vFirst);
    case SUB: return channelBinaryOp<SUB>(a, v, out, n, C, vFirst);
    case MUL: return channelBinaryOp<MUL>(a, v, out, n, C, vFirst);
    default: return channelBinaryOp<DIV>(a, v, out, n, C, vFirst);
  }
}

// ---- N-API glue ---------------------------------------------------------------------------------

// Every function takes its Float32Arrays first, then int32s, then (batchNorm) one number.
struct Call {
  float* p[6] = {};
  size_t n[6] = {};
  int d[16] = {};
  double number = 0;
};

napi_value fail(napi_env env, const char* msg) {
  napi_throw_type_error(env, nullptr, msg);
  return nullptr;
}

// Reads `arrays` Float32Arrays (null allowed where bit i of `nullable` is set), `ints` int32s and,
// with `number`, one more number. False (with a JS TypeError pending) when anything is off.
bool read(napi_env env, napi_callback_info info, int arrays, int ints, unsigned nullable, bool number, Call& c) {
  napi_value v[24];
  size_t n = 24;
  napi_get_cb_info(env, info, &n, v, nullptr, nullptr);
  if (n < size_t(arrays + ints + (number ? 1 : 0))) return fail(env, "native kernels: too few arguments"), false;
  for (int i = 0; i < arrays; i++) {
    napi_valuetype t;
    napi_typeof(env, v[i], &t);
    if ((nullable >> i & 1) && (t == napi_null || t == napi_undefined)) continue;
    bool is = false;
    napi_is_typedarray(env, v[i], &is);
    napi_typedarray_type type = napi_int8_array;
    void* data = nullptr;
    if (is) napi_get_typedarray_info(env, v[i], &type, &c.n[i], &data, nullptr, nullptr);
    if (type != napi_float32_array) return fail(env, "native kernels: expected a Float32Array"), false;
    c.p[i] = static_cast<float*>(data);
  }
  for (int i = 0; i < ints; i++)
    if (napi_get_value_int32(env, v[arrays + i], &c.d[i]) != napi_ok || c.d[i] < 0 || c.d[i] > (1 << 28))
      return fail(env, "native kernels: expected a non-negative integer below 2^28"), false;
  if (number && napi_get_value_double(env, v[arrays + ints], &c.number) != napi_ok)
    return fail(env, "native kernels: expected a number"), false;
  return true;
}

template <typename F>
napi_value guarded(napi_env env, F f) {
  try {
    f();
  } catch (const std::bad_alloc&) {
    napi_throw_error(env, nullptr, "native kernels: out of memory");
  } catch (...) {
    napi_throw_error(env, nullptr, "native kernels: internal error");
  }
  return nullptr;
}

// a*b*c*d, or SIZE_MAX (which no array length equals) when it overflows.
inline size_t mul(size_t a, size_t b, size_t c, size_t d) {
  size_t r;
  if (__builtin_mul_overflow(a, b, &r) || __builtin_mul_overflow(r, c, &r) || __builtin_mul_overflow(r, d, &r)) return SIZE_MAX;
  return r;
}

// conv2d(x, filter, bias|null, out, B, H, W, C, KH, KW, O, Ho, Wo, top, left, relu)
napi_value Conv2d(napi_env env, napi_callback_info info) {
  Call c;
  if (!read(env, info, 4, 12, 1u << 2, false, c)) return nullptr;
  const int *d = c.d, B = d[0], H = d[1], W = d[2], C = d[3], KH = d[4], KW = d[5], O = d[6], Ho = d[7], Wo = d[8];
  if (c.n[0] != mul(B, H, W, C) || c.n[1] != mul(KH, KW, C, O) || (c.p[2] && c.n[2] != size_t(O)) ||
      c.n[3] != mul(B, Ho, Wo, O))
    return fail(env, "conv2d: array sizes do not match the shapes");
  return guarded(env, [&] { conv2d(c.p[0], B, H, W, C, c.p[1], KH, KW, O, c.p[2], c.p[3], Ho, Wo, d[9], d[10], d[11] != 0); });
}

// conv2dInputGrad(dy, filter, dx, B, Ho, Wo, O, KH, KW, C, H, W, top, left)
napi_value Conv2dInputGrad(napi_env env, napi_callback_info info) {
  Call c;
  if (!read(env, info, 3, 11, 0, false, c)) return nullptr;
  const int *d = c.d, B = d[0], Ho = d[1], Wo = d[2], O = d[3], KH = d[4], KW = d[5], C = d[6], H = d[7], W = d[8];
  if (c.n[0] != mul(B, Ho, Wo, O) || c.n[1] != mul(KH, KW, C, O) || c.n[2] != mul(B, H, W, C))
    return fail(env, "conv2dInputGrad: array sizes do not match the shapes");
  return guarded(env, [&] { conv2dInputGrad(c.p[0], B, Ho, Wo, O, c.p[1], KH, KW, C, c.p[2], H, W, d[9], d[10]); });
}

// conv2dFilterGrad(x, dy, dw, B, H, W, C, Ho, Wo, O, KH, KW, top, left)
napi_value Conv2dFilterGrad(napi_env env, napi_callback_info info) {
  Call c;
  if (!read(env, info, 3, 11, 0, false, c)) return nullptr;
  const int *d = c.d, B = d[0], H = d[1], W = d[2], C = d[3], Ho = d[4], Wo = d[5], O = d[6], KH = d[7], KW = d[8];
  if (c.n[0] != mul(B, H, W, C) || c.n[1] != mul(B, Ho, Wo, O) || c.n[2] != mul(KH, KW, C, O))
    return fail(env, "conv2dFilterGrad: array sizes do not match the shapes");
  return guarded(env, [&] { conv2dFilterGrad(c.p[0], B, H, W, C, c.p[1], Ho, Wo, O, KH, KW, c.p[2], d[9], d[10]); });
}

// maxPoolGrad(x, dy, dx, B, H, W, C, Ho, Wo, fh, fw, sh, sw, top, left)
napi_value MaxPoolGrad(napi_env env, napi_callback_info info) {
  Call c;
  if (!read(env, info, 3, 12, 0, false, c)) return nullptr;
  const int *d = c.d, B = d[0], H = d[1], W = d[2], C = d[3], Ho = d[4], Wo = d[5];
  if (c.n[0] != mul(B, H, W, C) || c.n[2] != c.n[0] || c.n[1] != mul(B, Ho, Wo, C))
    return fail(env, "maxPoolGrad: array sizes do not match the shapes");
  return guarded(env, [&] { maxPoolGrad(c.p[0], c.p[1], c.p[2], B, H, W, C, Ho, Wo, d[6], d[7], d[8], d[9], d[10], d[11]); });
}

// batchNorm(x, mean, variance, offset|null, scale|null, y, C, eps)
napi_value BatchNorm(napi_env env, napi_callback_info info) {
  Call c;
  if (!read(env, info, 6, 1, 1u << 3 | 1u << 4, true, c)) return nullptr;
  const size_t C = size_t(c.d[0]);
  if (C == 0 || c.n[0] % C || c.n[5] != c.n[0] || c.n[1] != C || c.n[2] != C || (c.p[3] && c.n[3] != C) ||
      (c.p[4] && c.n[4] != C))
    return fail(env, "batchNorm: array sizes do not match the shapes");
  return guarded(env, [&] { batchNorm(c.p[0], c.p[1], c.p[2], c.p[3], c.p[4], float(c.number), c.p[5], c.n[0] / C, int(C)); });
}

// channelBinary(a, v, out, op, C, vFirst)
napi_value ChannelBinary(napi_env env, napi_callback_info info) {
  Call c;
  if (!read(env, info, 3, 3, 0, false, c)) return nullptr;
  const int op = c.d[0];
  const size_t C = size_t(c.d[1]);
  if (op > DIV || C == 0 || c.n[0] % C || c.n[1] != C || c.n[2] != c.n[0])
    return fail(env, "channelBinary: array sizes do not match the shapes");
  return guarded(env, [&] { channelBinary(op, c.p[0], c.p[1], c.p[2], c.n[0] / C, int(C), c.d[2] != 0); });
}

napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"conv2d", nullptr, Conv2d, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"conv2dInputGrad", nullptr, Conv2dInputGrad, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"conv2dFilterGrad", nullptr, Conv2dFilterGrad, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"maxPoolGrad", nullptr, MaxPoolGrad, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"batchNorm", nullptr, BatchNorm, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"channelBinary", nullptr, ChannelBinary, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
