/**
 * The two factorizations PiSSA and OLoRA start LoRA from, in float64 on plain arrays (tfjs has
 * neither, and float32 would lose the small singular directions): a Householder QR with LAPACK's
 * sign convention (geqrf + orgqr, what torch.linalg.qr calls, so Q and R come out as PyTorch's up
 * to rounding), and the leading singular triplets from the Gram matrix's eigenvectors by cyclic
 * Jacobi. A singular pair's sign is arbitrary in any SVD (LAPACK's included); ours is fixed by
 * making each left vector's largest entry positive. Matrices are row-major.
 */

/** A row-major matrix. */
export interface Mat {
  rows: number;
  cols: number;
  data: Float64Array;
}

export function mat(rows: number, cols: number, data?: ArrayLike<number>): Mat {
  return { rows, cols, data: data ? Float64Array.from(data) : new Float64Array(rows * cols) };
}

export function transpose(m: Mat): Mat {
  const t = mat(m.cols, m.rows);
  for (let i = 0; i < m.rows; i++)
    for (let j = 0; j < m.cols; j++) t.data[j * m.rows + i] = m.data[i * m.cols + j]!;
  return t;
}

/**
 * A = Q R with Q [m, k] orthonormal columns and R [k, n] upper triangular, k = min(m, n)
 * (torch.linalg.qr's "reduced" mode). Householder reflectors as LAPACK's dlarfg makes them:
 * beta = -sign(alpha) ||x||, so R's diagonal carries the opposite sign of the column's lead entry.
 */
export function qr(a: Mat): { q: Mat; r: Mat } {
  const { rows: m, cols: n } = a;
  const k = Math.min(m, n);
  const w = Float64Array.from(a.data);
  const vs: Float64Array[] = [];
  const taus: number[] = [];
  for (let j = 0; j < k; j++) {
    const alpha = w[j * n + j]!;
    let xnorm = 0;
    for (let i = j + 1; i < m; i++) xnorm = Math.hypot(xnorm, w[i * n + j]!);
    const v = new Float64Array(m - j);
    v[0] = 1;
    if (xnorm === 0) {
      // dlarfg: H = I when the column below the diagonal is already zero.
      vs.push(v);
      taus.push(0);
      continue;
    }
    const beta = -(alpha >= 0 ? 1 : -1) * Math.hypot(alpha, xnorm);
    const tau = (beta - alpha) / beta;
    for (let i = j + 1; i < m; i++) v[i - j] = w[i * n + j]! / (alpha - beta);
    // Apply H = I - tau v v^T to columns j.. of the working matrix.
    for (let c = j; c < n; c++) {
      let dot = 0;
      for (let i = j; i < m; i++) dot += v[i - j]! * w[i * n + c]!;
      dot *= tau;
      for (let i = j; i < m; i++) w[i * n + c] = w[i * n + c]! - dot * v[i - j]!;
    }
    vs.push(v);
    taus.push(tau);
  }
  const r = mat(k, n);
  for (let i = 0; i < k; i++) for (let c = i; c < n; c++) r.data[i * n + c] = w[i * n + c]!;
  // Q = H_1 ... H_k applied to the first k columns of I (orgqr), the last reflector first.
  const q = mat(m, k);
  for (let i = 0; i < k; i++) q.data[i * k + i] = 1;
  for (let j = k - 1; j >= 0; j--) {
    const v = vs[j]!;
    const tau = taus[j]!;
    if (tau === 0) continue;
    for (let c = 0; c < k; c++) {
      let dot = 0;
      for (let i = j; i < m; i++) dot += v[i - j]! * q.data[i * k + c]!;
      dot *= tau;
      for (let i = j; i < m; i++) q.data[i * k + c] = q.data[i * k + c]! - dot * v[i - j]!;
    }
  }
  return { q, r };
}

/** Eigenvalues (descending) and eigenvectors (columns of `vectors`) of a symmetric matrix. */
function symmetricEigen(g: Mat): { values: number[]; vectors: Mat } {
  const n = g.rows;
  const a = Float64Array.from(g.data);
  const v = mat(n, n);
  for (let i = 0; i < n; i++) v.data[i * n + i] = 1;
  const total = a.reduce((s, x) => s + x * x, 0);
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += a[p * n + q]! ** 2;
    if (off <= 1e-30 * total) break;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q]!;
        if (apq === 0) continue;
        const theta = (a[q * n + q]! - a[p * n + p]!) / (2 * apq);
        const t = (theta >= 0 ? 1 : -1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          // Rotate columns p and q, then rows p and q.
          const akp = a[k * n + p]!;
          const akq = a[k * n + q]!;
          a[k * n + p] = c * akp - s * akq;
          a[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p * n + k]!;
          const aqk = a[q * n + k]!;
          a[p * n + k] = c * apk - s * aqk;
          a[q * n + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = v.data[k * n + p]!;
          const vkq = v.data[k * n + q]!;
          v.data[k * n + p] = c * vkp - s * vkq;
          v.data[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => a[j * n + j]! - a[i * n + i]!);
  const vectors = mat(n, n);
  order.forEach((src, dst) => {
    for (let k = 0; k < n; k++) vectors.data[k * n + dst] = v.data[k * n + src]!;
  });
  return { values: order.map((i) => a[i * n + i]!), vectors };
}

/**
 * The r leading singular triplets of M [m, n]: U [m, r], S [r], Vh [r, n] with M ~ U diag(S) Vh
 * (torch.linalg.svd's V, S, Uh naming aside), from the eigenvectors of the smaller Gram matrix.
 * Each left vector's largest-magnitude entry is made positive (LAPACK's choice is arbitrary).
 */
export function topSvd(m: Mat, r: number): { u: Mat; s: number[]; vh: Mat } {
  const wide = m.cols > m.rows;
  // Gram of the smaller side: M M^T [m, m] when wide, else M^T M [n, n].
  const small = wide ? m.rows : m.cols;
  const g = mat(small, small);
  for (let i = 0; i < small; i++) {
    for (let j = i; j < small; j++) {
      let d = 0;
      if (wide) for (let k = 0; k < m.cols; k++) d += m.data[i * m.cols + k]! * m.data[j * m.cols + k]!;
      else for (let k = 0; k < m.rows; k++) d += m.data[k * m.cols + i]! * m.data[k * m.cols + j]!;
      g.data[i * small + j] = d;
      g.data[j * small + i] = d;
    }
  }
  const { values, vectors } = symmetricEigen(g);
  const s = values.slice(0, r).map((x) => Math.sqrt(Math.max(x, 0)));
  const u = mat(m.rows, r);
  const vh = mat(r, m.cols);
  for (let c = 0; c < r; c++) {
    const sigma = s[c]!;
    if (wide) {
      for (let i = 0; i < m.rows; i++) u.data[i * r + c] = vectors.data[i * small + c]!;
      // v = M^T u / sigma
      for (let j = 0; j < m.cols; j++) {
        let d = 0;
        for (let i = 0; i < m.rows; i++) d += m.data[i * m.cols + j]! * u.data[i * r + c]!;
        vh.data[c * m.cols + j] = sigma > 0 ? d / sigma : 0;
      }
    } else {
      for (let j = 0; j < m.cols; j++) vh.data[c * m.cols + j] = vectors.data[j * small + c]!;
      // u = M v / sigma
      for (let i = 0; i < m.rows; i++) {
        let d = 0;
        for (let j = 0; j < m.cols; j++) d += m.data[i * m.cols + j]! * vh.data[c * m.cols + j]!;
        u.data[i * r + c] = sigma > 0 ? d / sigma : 0;
      }
    }
    let big = 0;
    for (let i = 0; i < m.rows; i++)
      if (Math.abs(u.data[i * r + c]!) > Math.abs(big)) big = u.data[i * r + c]!;
    if (big < 0) {
      for (let i = 0; i < m.rows; i++) u.data[i * r + c] = -u.data[i * r + c]!;
      for (let j = 0; j < m.cols; j++) vh.data[c * m.cols + j] = -vh.data[c * m.cols + j]!;
    }
  }
  return { u, s, vh };
}
