/* One training step of mlpx's MLP with the built-in ReLU, softmax cross-entropy and SGD or
 * momentum, in one C call: the minibatch gather, the forward products, the loss, the backward
 * products with the optimizer's first pass fused into each weight-gradient GEMM, and the rest
 * of the update. The products go to the cblas_sgemm / cblas_saxpy of the BLAS NumPy loaded
 * (their addresses come from mlpx.core.blas), so one thread pool runs every product; the
 * elementwise work between them is plain loops over arrays that stay in cache.
 *
 * The arithmetic is the Python path's (mlpx.core.model.MLP.forward/backward, CrossEntropy,
 * SGD/Momentum.step), in the same order; only its ~35 NumPy and ctypes calls per step (1-2 us
 * of dispatch each, most of the time outside the products at small batches) are gone.
 *
 * Arrays are float32, C-contiguous, and owned by Python (mlpx/core/compiled/step.py keeps them alive
 * for as long as the plan). Layout, for a plan of `rows` rows and layer sizes s[0..L]:
 *   W[l] (s[l], s[l+1]), b[l] (s[l+1],); for momentum, their velocities vW[l], vb[l];
 *   inputs (rows, s[0]); z[l], a[l], grad_a[l] (rows, s[l+1]) for hidden layers l < L - 1;
 *   logits (rows, s[L]), which becomes dL/dlogits in place;
 *   x (x_rows, s[0]) the training inputs, labels (x_rows,) int64 their classes.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(_MSC_VER) && !defined(restrict)
#define restrict __restrict
#endif

#define MAX_LAYERS 16
#define ROW_MAJOR 101
#define NO_TRANS 111
#define TRANS 112
#define CAPSULE_NAME "mlpx.core.compiled._step.Plan"

typedef void (*sgemm32_fn)(int, int, int, int32_t, int32_t, int32_t, float, const float *, int32_t,
                           const float *, int32_t, float, float *, int32_t);
typedef void (*sgemm64_fn)(int, int, int, int64_t, int64_t, int64_t, float, const float *, int64_t,
                           const float *, int64_t, float, float *, int64_t);
typedef void (*saxpy32_fn)(int32_t, float, const float *, int32_t, float *, int32_t);
typedef void (*saxpy64_fn)(int64_t, float, const float *, int64_t, float *, int64_t);

enum { SGD = 0, MOMENTUM = 1 };

typedef struct {
    void *sgemm, *saxpy;
    int ilp64, kind, n_layers;
    Py_ssize_t rows, x_rows, axpy_min_size;
    Py_ssize_t sizes[MAX_LAYERS + 1];
    float *W[MAX_LAYERS], *b[MAX_LAYERS], *vW[MAX_LAYERS], *vb[MAX_LAYERS];
    float *z[MAX_LAYERS], *a[MAX_LAYERS], *grad_a[MAX_LAYERS];
    float *logits, *inputs;
    const float *x;
    const int64_t *labels;
    int64_t *batch_labels; /* (rows,), owned by the plan */
    float *sums;           /* (max of sizes[1:],), owned by the plan */
} Plan;

static void gemm(const Plan *p, int trans_a, int trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                 float alpha, const float *a, Py_ssize_t lda, const float *b, Py_ssize_t ldb,
                 float beta, float *c, Py_ssize_t ldc)
{
    if (p->ilp64)
        ((sgemm64_fn)p->sgemm)(ROW_MAJOR, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    else
        ((sgemm32_fn)p->sgemm)(ROW_MAJOR, trans_a, trans_b, (int32_t)m, (int32_t)n, (int32_t)k, alpha, a,
                               (int32_t)lda, b, (int32_t)ldb, beta, c, (int32_t)ldc);
}

/* y <- y - lr * v over n entries: BLAS's threaded axpy for large arrays, a loop otherwise */
static void descend(const Plan *p, Py_ssize_t n, float lr, const float *v, float *y)
{
    if (n >= p->axpy_min_size) {
        if (p->ilp64)
            ((saxpy64_fn)p->saxpy)(n, -lr, v, 1, y, 1);
        else
            ((saxpy32_fn)p->saxpy)((int32_t)n, -lr, v, 1, y, 1);
        return;
    }
    for (Py_ssize_t i = 0; i < n; i++)
        y[i] -= lr * v[i];
}

/* out (rows, units) <- b in every row: the forward GEMM then accumulates onto it (beta = 1), where
 * beta = 0 would have had BLAS zero out first; one pass fewer than a product then an add */
static void fill_bias(float *restrict out, const float *restrict b, Py_ssize_t rows, Py_ssize_t units)
{
    for (Py_ssize_t r = 0; r < rows; r++)
        memcpy(out + r * units, b, (size_t)units * sizeof(float));
}

/* a <- max(z, 0) over n entries (NaN propagates, as NumPy's maximum) */
static void relu(float *restrict a, const float *restrict z, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++)
        a[i] = z[i] < 0.0f ? 0.0f : z[i];
}

/* ReLU's backward in place, g <- g * (z > 0) over (rows, units), and the result's column sums into
 * sums (units,) in the same pass. A product, so a NaN or infinite gradient gives NaN, not 0;
 * written as a select without a branch so that it vectorises (a branch on the sign of z
 * mispredicts half the time: it cost more than the layer's GEMM). */
static void relu_backward(float *restrict g, const float *restrict z, Py_ssize_t rows, Py_ssize_t units,
                          float *restrict sums)
{
    memset(sums, 0, (size_t)units * sizeof(float));
    for (Py_ssize_t r = 0; r < rows; r++) {
        float *restrict gr = g + r * units;
        const float *restrict zr = z + r * units;
        for (Py_ssize_t j = 0; j < units; j++) {
            const float kept = gr[j], zeroed = gr[j] * 0.0f;
            gr[j] = zr[j] > 0.0f ? kept : zeroed;
            sums[j] += gr[j];
        }
    }
}

/* Softmax cross-entropy of the logits (rows, classes) against the batch's labels: the mean loss
 * (NaN or inf when the logits are), each row's first arg max into predicted, and dL/dlogits
 * (softmax - one-hot) / rows in place of the logits, with its column sums into sums (classes,). */
static double cross_entropy(float *logits, const int64_t *labels, Py_ssize_t rows, Py_ssize_t classes,
                            int64_t *predicted, float *sums)
{
    double total = 0.0;
    memset(sums, 0, (size_t)classes * sizeof(float));
    const float scale = 1.0f / (float)rows;
    for (Py_ssize_t r = 0; r < rows; r++) {
        float *l = logits + r * classes;
        float top = l[0];
        Py_ssize_t best = 0;
        for (Py_ssize_t j = 1; j < classes; j++) {
            if (isnan(top))
                break;
            if (l[j] > top || isnan(l[j])) {
                top = l[j];
                best = j;
            }
        }
        predicted[r] = best;
        const float shifted_label = l[labels[r]] - top;
        float sum = 0.0f;
        for (Py_ssize_t j = 0; j < classes; j++) {
            l[j] = expf(l[j] - top);
            sum += l[j];
        }
        total += (double)logf(sum) - (double)shifted_label;
        const float inverse = 1.0f / sum;
        for (Py_ssize_t j = 0; j < classes; j++) {
            l[j] = (l[j] * inverse - (j == labels[r] ? 1.0f : 0.0f)) * scale;
            sums[j] += l[j];
        }
    }
    return total / (double)rows;
}

/* The bias's step from the column sums of its layer's delta, as the Python path's GEMV against
 * ones: SGD b <- -lr * sums + b; momentum vb <- sums + mu * vb, b <- b - lr * vb. */
static void bias_step(const Plan *p, int layer, const float *sums, float lr, float mu)
{
    const Py_ssize_t units = p->sizes[layer + 1];
    float *b = p->b[layer], *v = p->vb[layer];
    if (p->kind == MOMENTUM) {
        for (Py_ssize_t j = 0; j < units; j++) {
            v[j] = sums[j] + mu * v[j];
            b[j] -= lr * v[j];
        }
        return;
    }
    for (Py_ssize_t j = 0; j < units; j++)
        b[j] += -lr * sums[j];
}

static double train(Plan *p, const int64_t *order, float lr, float mu, double limit, int64_t *predicted)
{
    const Py_ssize_t rows = p->rows, features = p->sizes[0];
    const int L = p->n_layers;
    for (Py_ssize_t r = 0; r < rows; r++) {
        memcpy(p->inputs + r * features, p->x + order[r] * features, (size_t)features * sizeof(float));
        p->batch_labels[r] = p->labels[order[r]];
    }
    const float *in = p->inputs;
    for (int l = 0; l < L; l++) {
        const Py_ssize_t fan_in = p->sizes[l], units = p->sizes[l + 1];
        float *out = l < L - 1 ? p->z[l] : p->logits;
        fill_bias(out, p->b[l], rows, units);
        gemm(p, NO_TRANS, NO_TRANS, rows, units, fan_in, 1.0f, in, fan_in, p->W[l], units, 1.0f, out, units);
        if (l < L - 1)
            relu(p->a[l], out, rows * units);
        in = l < L - 1 ? p->a[l] : NULL;
    }
    const double value = cross_entropy(p->logits, p->batch_labels, rows, p->sizes[L], predicted, p->sums);
    if (!isfinite(value) || value > limit) /* diverged: the caller raises before any update, as in Python */
        return value;
    float *delta = p->logits;
    for (int l = L - 1; l >= 0; l--) {
        const Py_ssize_t fan_in = p->sizes[l], units = p->sizes[l + 1];
        const float *a_prev = l ? p->a[l - 1] : p->inputs;
        float *grad_a = l ? p->grad_a[l - 1] : NULL;
        if (grad_a) /* before the weights change below */
            gemm(p, NO_TRANS, TRANS, rows, fan_in, units, 1.0f, delta, units, p->W[l], units, 0.0f, grad_a,
                 fan_in);
        if (p->kind == MOMENTUM) {
            gemm(p, TRANS, NO_TRANS, fan_in, units, rows, 1.0f, a_prev, fan_in, delta, units, mu, p->vW[l],
                 units);
            descend(p, fan_in * units, lr, p->vW[l], p->W[l]);
        } else {
            gemm(p, TRANS, NO_TRANS, fan_in, units, rows, -lr, a_prev, fan_in, delta, units, 1.0f, p->W[l],
                 units);
        }
        bias_step(p, l, p->sums, lr, mu); /* the sums of this delta, from the pass that made it */
        if (!grad_a)
            break;
        relu_backward(grad_a, p->z[l - 1], rows, fan_in, p->sums);
        delta = grad_a;
    }
    return value;
}

static void destroy(PyObject *capsule)
{
    Plan *p = PyCapsule_GetPointer(capsule, CAPSULE_NAME);
    if (p) {
        free(p->batch_labels);
        free(p->sums);
        free(p);
    }
}

static int addresses(PyObject *seq, int n, float **out, const char *what)
{
    PyObject *fast = PySequence_Fast(seq, what);
    if (!fast)
        return -1;
    if (PySequence_Fast_GET_SIZE(fast) != n) {
        PyErr_Format(PyExc_ValueError, "%s: expected %d addresses, got %zd", what, n,
                     PySequence_Fast_GET_SIZE(fast));
        Py_DECREF(fast);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        out[i] = PyLong_AsVoidPtr(PySequence_Fast_GET_ITEM(fast, i));
        if (PyErr_Occurred()) {
            Py_DECREF(fast);
            return -1;
        }
    }
    Py_DECREF(fast);
    return 0;
}

PyDoc_STRVAR(plan_doc,
             "plan(sgemm, saxpy, ilp64, axpy_min_size, kind, rows, sizes, weights, biases, weight_velocities,\n"
             "     bias_velocities, z, a, grad_a, logits, inputs, x, x_rows, labels) -> capsule\n\n"
             "Addresses (ints) of float32 C-contiguous arrays laid out as this module's header says; kind 0\n"
             "is SGD (the velocity sequences empty), 1 momentum. The caller keeps every array alive.");

static PyObject *make_plan(PyObject *self, PyObject *args)
{
    PyObject *sgemm, *saxpy, *sizes, *weights, *biases, *vw, *vb, *z, *a, *grad_a, *logits, *inputs, *x,
        *labels;
    int ilp64, kind;
    Py_ssize_t axpy_min_size, rows, x_rows;
    if (!PyArg_ParseTuple(args, "OOpninOOOOOOOOOOOnO", &sgemm, &saxpy, &ilp64, &axpy_min_size, &kind, &rows,
                          &sizes, &weights, &biases, &vw, &vb, &z, &a, &grad_a, &logits, &inputs, &x, &x_rows,
                          &labels))
        return NULL;
    PyObject *sizes_fast = PySequence_Fast(sizes, "sizes");
    if (!sizes_fast)
        return NULL;
    const Py_ssize_t n_sizes = PySequence_Fast_GET_SIZE(sizes_fast);
    if (n_sizes < 2 || n_sizes > MAX_LAYERS + 1 || rows < 1 || (kind != SGD && kind != MOMENTUM)) {
        Py_DECREF(sizes_fast);
        PyErr_SetString(PyExc_ValueError, "plan: 1 to 16 layers, at least one row, kind 0 or 1");
        return NULL;
    }
    Plan *p = calloc(1, sizeof(Plan));
    if (!p) {
        Py_DECREF(sizes_fast);
        return PyErr_NoMemory();
    }
    p->n_layers = (int)n_sizes - 1;
    for (Py_ssize_t i = 0; i < n_sizes; i++)
        p->sizes[i] = PyLong_AsSsize_t(PySequence_Fast_GET_ITEM(sizes_fast, i));
    Py_DECREF(sizes_fast);
    const int L = p->n_layers;
    p->sgemm = PyLong_AsVoidPtr(sgemm);
    p->saxpy = PyLong_AsVoidPtr(saxpy);
    p->ilp64 = ilp64;
    p->axpy_min_size = axpy_min_size;
    p->kind = kind;
    p->rows = rows;
    p->x_rows = x_rows;
    p->logits = PyLong_AsVoidPtr(logits);
    p->inputs = PyLong_AsVoidPtr(inputs);
    p->x = PyLong_AsVoidPtr(x);
    p->labels = PyLong_AsVoidPtr(labels);
    p->batch_labels = malloc((size_t)rows * sizeof(int64_t));
    Py_ssize_t widest = 1;
    for (int i = 1; i <= L; i++)
        widest = p->sizes[i] > widest ? p->sizes[i] : widest;
    p->sums = malloc((size_t)widest * sizeof(float));
    const int velocities = kind == MOMENTUM ? L : 0;
    if (PyErr_Occurred() || !p->batch_labels || !p->sums || addresses(weights, L, p->W, "weights") ||
        addresses(biases, L, p->b, "biases") || addresses(vw, velocities, p->vW, "weight velocities") ||
        addresses(vb, velocities, p->vb, "bias velocities") || addresses(z, L - 1, p->z, "z") ||
        addresses(a, L - 1, p->a, "a") || addresses(grad_a, L - 1, p->grad_a, "grad_a")) {
        free(p->batch_labels);
        free(p->sums);
        free(p);
        return PyErr_Occurred() ? NULL : PyErr_NoMemory();
    }
    PyObject *capsule = PyCapsule_New(p, CAPSULE_NAME, destroy);
    if (!capsule) {
        free(p->batch_labels);
        free(p->sums);
        free(p);
    }
    return capsule;
}

PyDoc_STRVAR(step_doc,
             "step(plan, order, order_len, start, lr, momentum, limit, predicted) -> float\n\n"
             "Trains the plan's rows of order[start:] (an int64 array's address and length) and returns\n"
             "their mean loss. predicted (int64, the address of row `start` of the epoch's predictions)\n"
             "receives each row's arg max. A loss that is NaN or above limit is returned before any update.");

static PyObject *step(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 8) {
        PyErr_SetString(PyExc_TypeError, "step takes 8 arguments");
        return NULL;
    }
    Plan *p = PyCapsule_GetPointer(args[0], CAPSULE_NAME);
    if (!p)
        return NULL;
    const int64_t *order = PyLong_AsVoidPtr(args[1]);
    const Py_ssize_t order_len = PyLong_AsSsize_t(args[2]), start = PyLong_AsSsize_t(args[3]);
    const double lr = PyFloat_AsDouble(args[4]), mu = PyFloat_AsDouble(args[5]), limit = PyFloat_AsDouble(args[6]);
    int64_t *predicted = PyLong_AsVoidPtr(args[7]);
    if (PyErr_Occurred())
        return NULL;
    if (start < 0 || order_len < p->rows || start > order_len - p->rows) { /* no overflow */
        PyErr_Format(PyExc_IndexError, "step: rows %zd to %zd of an order of %zd", start, start + p->rows,
                     order_len);
        return NULL;
    }
    order += start;
    const Py_ssize_t classes = p->sizes[p->n_layers];
    for (Py_ssize_t r = 0; r < p->rows; r++) {
        if (order[r] < 0 || order[r] >= p->x_rows) {
            PyErr_Format(PyExc_IndexError, "step: row %lld of a training set of %zd rows", (long long)order[r],
                         p->x_rows);
            return NULL;
        }
        const int64_t label = p->labels[order[r]];
        if (label < 0 || label >= classes) {
            PyErr_Format(PyExc_ValueError, "step: label %lld of row %lld is not a class of 0..%zd",
                         (long long)label, (long long)order[r], classes - 1);
            return NULL;
        }
    }
    double value;
    Py_BEGIN_ALLOW_THREADS value = train(p, order, (float)lr, (float)mu, limit, predicted);
    Py_END_ALLOW_THREADS return PyFloat_FromDouble(value);
}

static PyMethodDef methods[] = {
    {"plan", make_plan, METH_VARARGS, plan_doc},
    {"step", (PyCFunction)(void (*)(void))step, METH_FASTCALL, step_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_step", "mlpx's compiled training step (see mlpx/core/compiled/step.py).", -1, methods,
};

PyMODINIT_FUNC PyInit__step(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m && PyModule_AddIntConstant(m, "MAX_LAYERS", MAX_LAYERS) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
