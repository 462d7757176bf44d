/* rxibkr.io._frames: the reader's fast path in C (optional; rxibkr/io/transport.py has the same in Python).
 *
 * scan(buf, pos) -> (payloads, pos): starting at ``pos`` in ``buf``, the payloads of the whole frames that
 * take the reader's fast path (first byte 0x82: a final binary frame with no RSV bits; unmasked; a 64-bit
 * length without its most significant bit), in order, and the position after the last of them. It stops
 * at the first frame that is not one of those or not whole in ``buf``: the Python reader takes that one
 * (control frames, text, fragments, violations, a partial frame) exactly as without this module.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

static PyObject *
scan(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "scan(buf, pos) takes exactly 2 arguments");
        return NULL;
    }
    PyObject *buf = args[0];
    if (!PyBytes_Check(buf)) {
        PyErr_Format(PyExc_TypeError, "scan: buf must be bytes, not %.100s", Py_TYPE(buf)->tp_name);
        return NULL;
    }
    Py_ssize_t pos = PyLong_AsSsize_t(args[1]);
    if (pos == -1 && PyErr_Occurred()) {
        return NULL;
    }
    const unsigned char *data = (const unsigned char *)PyBytes_AS_STRING(buf);
    const Py_ssize_t size = PyBytes_GET_SIZE(buf);
    if (pos < 0 || pos > size) {
        PyErr_Format(PyExc_ValueError, "scan: pos %zd outside the buffer of %zd bytes", pos, size);
        return NULL;
    }
    PyObject *out = PyList_New(0);
    if (out == NULL) {
        return NULL;
    }
    while (size - pos >= 2) {
        const unsigned char *frame = data + pos;
        if (frame[0] != 0x82 || (frame[1] & 0x80)) {
            break;
        }
        const Py_ssize_t available = size - pos;
        Py_ssize_t head = 2;
        uint64_t length = frame[1] & 0x7F;
        if (length == 126) {
            head = 4;
            if (available < head) {
                break;
            }
            length = ((uint64_t)frame[2] << 8) | frame[3];
        }
        else if (length == 127) {
            head = 10;
            if (available < head) {
                break;
            }
            length = 0;
            for (int i = 2; i < 10; i++) {
                length = (length << 8) | frame[i];
            }
        }
        if (length > (uint64_t)(available - head)) {
            /* not whole in this buffer; also a 64-bit length with its top bit set (a violation, larger
             * than any buffer): the Python reader takes it */
            break;
        }
        PyObject *payload = PyBytes_FromStringAndSize((const char *)frame + head, (Py_ssize_t)length);
        if (payload == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        int failed = PyList_Append(out, payload);
        Py_DECREF(payload);
        if (failed) {
            Py_DECREF(out);
            return NULL;
        }
        pos += head + (Py_ssize_t)length;
    }
    return Py_BuildValue("(Nn)", out, pos);
}

static PyMethodDef methods[] = {
    {"scan", (PyCFunction)(void (*)(void))scan, METH_FASTCALL,
     "scan(buf, pos) -> (payloads, pos): the fast-path frames whole in buf from pos on."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "rxibkr.io._frames", "The reader's fast path in C (optional).", -1, methods,
};

PyMODINIT_FUNC
PyInit__frames(void)
{
    return PyModule_Create(&module);
}
