/* Fused selective scan for CPU (forward, backward, and the one-token block step).
 *
 * Plain C on raw float32 pointers, loaded through ctypes (see _cpu_kernel.py): it builds in
 * well under a second without torch headers. The SSM states being scanned live in local
 * arrays (a block of channels in the forward, one channel in the backward), so nothing of size
 * batch x length x d_inner x d_state is ever written to memory. With -O3 -ffast-math gcc vectorises the inner d_state loops, expf
 * included (glibc libmvec).
 *
 * Layout (channel-last, contiguous): u, delta, z, out: (batch, len, d); B, C: (batch, len, n);
 * A: (d, n); D, delta_bias: (d). Recurrence (mamba_ssm's selective_scan_ref):
 *   dt = softplus(delta + delta_bias);  h = exp(dt*A) * h + dt*B*u;  y = C.h + D*u;
 *   out = y * silu(z).
 * The backward recomputes the states chunk by chunk from checkpoints (no division by exp(dt*A),
 * which underflows for long sequences); every batch element is owned by one thread, so the
 * sums over channels (dB, dC) need no atomics, and the sums over batch (dA, dD, d_delta_bias)
 * go to per-batch partial buffers reduced by the caller.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAXN 256
#define CHUNK 64

static inline float softplus_f(float r) { return r > 20.f ? r : log1pf(expf(r)); }
static inline float sigmoid_f(float r) { return 1.f / (1.f + expf(-r)); }

/* Forward: a block of CB channels of one batch row per task, vectorised ACROSS channels
 * (contiguous in this layout): softplus, exp(dt*A) and the y accumulation are all vertical
 * vector ops; vectorising over d_state instead left a scalar softplus and a horizontal sum
 * per (t, channel). Lanes past d in the last block run with dt = A = 0 and stay 0. */
#define CB 16
void ss_fwd(int nb, int len, int d, int n, const float *u, const float *delta, const float *A,
            const float *B, const float *C, const float *D, const float *z, const float *dbias,
            int softplus, float *out, float *last_state, int nthreads) {
  int nblk = (d + CB - 1) / CB;
#pragma omp parallel for schedule(static) num_threads(nthreads)
  for (int job = 0; job < nb * nblk; ++job) {
    int b = job / nblk, c0 = (job % nblk) * CB, cb = d - c0 < CB ? d - c0 : CB;
    float h[MAXN][CB], At[MAXN][CB], bias[CB], Dc[CB], dt[CB], du[CB], y[CB];
    for (int j = 0; j < CB; ++j) {
      bias[j] = dbias && j < cb ? dbias[c0 + j] : 0.f;
      Dc[j] = D && j < cb ? D[c0 + j] : 0.f;
      dt[j] = du[j] = 0.f;
    }
    for (int k = 0; k < n; ++k)
      for (int j = 0; j < CB; ++j) {
        At[k][j] = j < cb ? A[(size_t)(c0 + j) * n + k] : 0.f;
        h[k][j] = 0.f;
      }
    for (int t = 0; t < len; ++t) {
      size_t i0 = ((size_t)b * len + t) * d + c0;
      const float *Bt = B + ((size_t)b * len + t) * n, *Ct = C + ((size_t)b * len + t) * n;
#pragma omp simd
      for (int j = 0; j < cb; ++j) {
        float r = delta[i0 + j] + bias[j];
        dt[j] = softplus ? softplus_f(r) : r;
        du[j] = dt[j] * u[i0 + j];
        y[j] = Dc[j] * u[i0 + j];
      }
      for (int k = 0; k < n; ++k) {
        float bk = Bt[k], ck = Ct[k];
#pragma omp simd
        for (int j = 0; j < CB; ++j) {
          h[k][j] = expf(dt[j] * At[k][j]) * h[k][j] + du[j] * bk;
          y[j] += h[k][j] * ck;
        }
      }
      if (z) {
#pragma omp simd
        for (int j = 0; j < cb; ++j) {
          float zz = z[i0 + j];
          y[j] *= zz * sigmoid_f(zz);
        }
      }
      for (int j = 0; j < cb; ++j) out[i0 + j] = y[j];
    }
    if (last_state)
      for (int j = 0; j < cb; ++j)
        for (int k = 0; k < n; ++k) last_state[((size_t)b * d + c0 + j) * n + k] = h[k][j];
  }
}

/* Gradients. dA_part, dD_part, ddb_part are per-batch partials: (nb, d, n), (nb, d), (nb, d).
 * dB, dC must be zeroed by the caller. */
void ss_bwd(int nb, int len, int d, int n, const float *u, const float *delta, const float *A,
            const float *B, const float *C, const float *D, const float *z, const float *dbias,
            int softplus, const float *dout, float *du, float *ddelta, float *dA_part,
            float *dB, float *dC, float *dD_part, float *dz, float *ddb_part, int nthreads) {
  int nchunks = (len + CHUNK - 1) / CHUNK;
  size_t row = (size_t)len * d;
#pragma omp parallel num_threads(nthreads)
  {
    /* ckpt: state before each chunk; hs: states inside one chunk (hs[0] = state before). */
    float *ckpt = (float *)malloc(sizeof(float) * (size_t)nchunks * n);
    float *hs = (float *)malloc(sizeof(float) * (size_t)(CHUNK + 1) * n);
    float *as = (float *)malloc(sizeof(float) * (size_t)CHUNK * n); /* exp(dt*A) in the chunk */
    /* One batch row's dt, d(dt)/dr and sigmoid(z), computed once, vectorised across the
     * contiguous channels: per channel below they were scalar softplus/sigmoid calls, three
     * times per element, which cost more than the scan itself. */
    float *dtb = (float *)malloc(sizeof(float) * row);
    float *dsp = (float *)malloc(sizeof(float) * row);
    float *sz = z ? (float *)malloc(sizeof(float) * row) : NULL;
    float g[MAXN];
#pragma omp for schedule(static)
    for (int b = 0; b < nb; ++b) {
      const float *db_ = delta + (size_t)b * row;
      for (int t = 0; t < len; ++t) {
        const float *dr = db_ + (size_t)t * d;
        float *dtt = dtb + (size_t)t * d, *dst = dsp + (size_t)t * d;
#pragma omp simd
        for (int c = 0; c < d; ++c) {
          float r = dr[c] + (dbias ? dbias[c] : 0.f);
          dtt[c] = softplus ? softplus_f(r) : r;
          dst[c] = softplus ? sigmoid_f(r) : 1.f;
        }
      }
      if (z) {
        const float *zb = z + (size_t)b * row;
#pragma omp simd
        for (size_t i = 0; i < row; ++i) sz[i] = sigmoid_f(zb[i]);
      }
      for (int c = 0; c < d; ++c) {
        const float *Ac = A + (size_t)c * n;
        float Dc = D ? D[c] : 0.f;
        float *dAc = dA_part + ((size_t)b * d + c) * n;
        float dDc = 0.f, ddbc = 0.f;
        memset(dAc, 0, sizeof(float) * n);
        /* pass 1: checkpoints */
        float *h = hs;
        memset(h, 0, sizeof(float) * n);
        /* the last chunk starts from its checkpoint: no need to scan past it here */
        for (int t = 0; t < (nchunks - 1) * CHUNK; ++t) {
          if (t % CHUNK == 0) memcpy(ckpt + (size_t)(t / CHUNK) * n, h, sizeof(float) * n);
          size_t i = ((size_t)b * len + t) * d + c;
          const float *Bt = B + ((size_t)b * len + t) * n;
          float dt = dtb[(size_t)t * d + c], dtu = dt * u[i];
#pragma omp simd
          for (int k = 0; k < n; ++k) h[k] = expf(dt * Ac[k]) * h[k] + dtu * Bt[k];
        }
        memcpy(ckpt + (size_t)(nchunks - 1) * n, h, sizeof(float) * n);
        /* pass 2: chunks in reverse; g carries dL/dh_t through exp(dt*A) */
        memset(g, 0, sizeof(float) * n);
        for (int ch = nchunks - 1; ch >= 0; --ch) {
          int t0 = ch * CHUNK, t1 = t0 + CHUNK < len ? t0 + CHUNK : len;
          memcpy(hs, ckpt + (size_t)ch * n, sizeof(float) * n);
          for (int t = t0; t < t1; ++t) {
            size_t i = ((size_t)b * len + t) * d + c;
            const float *Bt = B + ((size_t)b * len + t) * n;
            float dt = dtb[(size_t)t * d + c], dtu = dt * u[i];
            float *hp = hs + (size_t)(t - t0) * n, *hn = hp + n, *at = as + (size_t)(t - t0) * n;
#pragma omp simd
            for (int k = 0; k < n; ++k) {
              at[k] = expf(dt * Ac[k]);
              hn[k] = at[k] * hp[k] + dtu * Bt[k];
            }
          }
          for (int t = t1 - 1; t >= t0; --t) {
            size_t i = ((size_t)b * len + t) * d + c;
            size_t bt = ((size_t)b * len + t) * n;
            const float *Bt = B + bt, *Ct = C + bt;
            float *dBt = dB + bt, *dCt = dC + bt;
            size_t j = (size_t)t * d + c;
            float dt = dtb[j], ut = u[i];
            const float *hp = hs + (size_t)(t - t0) * n, *hn = hp + n;
            const float *at = as + (size_t)(t - t0) * n;
            float dy = dout[i];
            if (z) {
              float zz = z[i], s = sz[j];
              float y = Dc * ut;
#pragma omp simd reduction(+ : y)
              for (int k = 0; k < n; ++k) y += hn[k] * Ct[k];
              dz[i] = dy * y * s * (1.f + zz * (1.f - s));
              dy *= zz * s;
            }
            dDc += dy * ut;
            float dut = dy * Dc, ddt = 0.f;
            /* the gradient buffers never alias the inputs: vectorise without checks */
#pragma omp simd reduction(+ : ddt, dut)
            for (int k = 0; k < n; ++k) {
              float a = at[k];
              float gk = g[k] + dy * Ct[k];
              dCt[k] += dy * hn[k];
              float da = gk * hp[k] * a; /* d/d(dt*A) */
              ddt += da * Ac[k] + gk * ut * Bt[k];
              dAc[k] += da * dt;
              dut += gk * dt * Bt[k];
              dBt[k] += gk * dt * ut;
              g[k] = a * gk;
            }
            du[i] = dut;
            float dr = ddt * dsp[j];
            ddelta[i] = dr;
            ddbc += dr;
          }
        }
        if (dD_part) dD_part[(size_t)b * d + c] = dDc;
        if (ddb_part) ddb_part[(size_t)b * d + c] = ddbc;
      }
    }
    free(ckpt);
    free(hs);
    free(as);
    free(dtb);
    free(dsp);
    free(sz);
  }
}

/* One token through a whole Mamba block (no autograd), batch nb, in place on the states.
 * x: (nb, dm) block input; out: (nb, dm). If ln_w is given the block is the encoder's
 * pre-norm residual layer, out = x + Mamba(LayerNorm(x)) (out may alias x); otherwise
 * out = Mamba(x). conv_state: (nb, di, K) with the newest input last; ssm_state: (nb, di, n).
 * A = -exp(A_log), precomputed by the caller. scratch: at least 4*di + r + 2n + dm floats.
 * Matches mamba_ssm's Mamba.step. */
void mamba_step(int nb, int dm, int di, int n, int r, int K, const float *x, const float *w_in,
                const float *b_in, const float *w_conv, const float *b_conv, const float *w_x,
                const float *w_dt, const float *b_dt, const float *A, const float *D,
                const float *w_out, const float *b_out, float *conv_state, float *ssm_state,
                float *out, float *scratch, const float *ln_w, const float *ln_b, float eps) {
  float *xz = scratch, *xc = scratch + 2 * di, *dbl = xc + di, *dts = dbl + r + 2 * n;
  float *xn = dts + di;
  for (int b = 0; b < nb; ++b) {
    const float *xb = x + (size_t)b * dm;
    if (ln_w) {
      float mean = 0.f, var = 0.f;
      for (int k = 0; k < dm; ++k) mean += xb[k];
      mean /= dm;
      for (int k = 0; k < dm; ++k) var += (xb[k] - mean) * (xb[k] - mean);
      float inv = 1.f / sqrtf(var / dm + eps);
      for (int k = 0; k < dm; ++k) xn[k] = (xb[k] - mean) * inv * ln_w[k] + ln_b[k];
      xb = xn;
    }
    for (int j = 0; j < 2 * di; ++j) {
      const float *w = w_in + (size_t)j * dm;
      float s = b_in ? b_in[j] : 0.f;
      for (int k = 0; k < dm; ++k) s += w[k] * xb[k];
      xz[j] = s;
    }
    for (int c = 0; c < di; ++c) {
      float *cs = conv_state + ((size_t)b * di + c) * K;
      for (int k = 0; k < K - 1; ++k) cs[k] = cs[k + 1];
      cs[K - 1] = xz[c];
      float s = b_conv ? b_conv[c] : 0.f;
      for (int k = 0; k < K; ++k) s += cs[k] * w_conv[(size_t)c * K + k];
      xc[c] = s * sigmoid_f(s);
    }
    for (int j = 0; j < r + 2 * n; ++j) {
      const float *w = w_x + (size_t)j * di;
      float s = 0.f;
      for (int k = 0; k < di; ++k) s += w[k] * xc[k];
      dbl[j] = s;
    }
    const float *Bv = dbl + r, *Cv = dbl + r + n;
    for (int c = 0; c < di; ++c) {
      float s = b_dt[c];
      for (int k = 0; k < r; ++k) s += w_dt[(size_t)c * r + k] * dbl[k];
      float dt = softplus_f(s), du = dt * xc[c], y = 0.f;
      float *h = ssm_state + ((size_t)b * di + c) * n;
      const float *Ac = A + (size_t)c * n;
#pragma omp simd reduction(+ : y)
      for (int k = 0; k < n; ++k) {
        h[k] = expf(dt * Ac[k]) * h[k] + du * Bv[k];
        y += h[k] * Cv[k];
      }
      float zz = xz[di + c];
      dts[c] = (y + D[c] * xc[c]) * zz * sigmoid_f(zz);
    }
    float *ob = out + (size_t)b * dm;
    for (int j = 0; j < dm; ++j) {
      const float *w = w_out + (size_t)j * di;
      float s = b_out ? b_out[j] : 0.f;
      for (int k = 0; k < di; ++k) s += w[k] * dts[k];
      ob[j] = ln_w ? x[(size_t)b * dm + j] + s : s;
    }
  }
}
