/* hermipy._hostcall: one raw host system call, syscall(2), for syscalls/host.py's host_call.
 *
 * The same call through ctypes costs ~0.7 µs more (argument conversion and its call machinery), which is most of
 * what an exitless-served fstat or epoll_wait costs in Python. Optional: when it cannot be built, host_call uses
 * ctypes, with the same results and errors.
 *
 * syscall(nr, *args): up to six arguments, each an int (passed as a 64-bit register value; negative ints wrap),
 * None (NULL) or an object with the buffer protocol (a pointer to its bytes, held for the call). Returns the
 * result; -1 raises OSError(errno, strerror(errno)), as ctypes' path does. The GIL is released for the call. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

static PyObject *hostcall_syscall(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    long regs[7] = {0};
    Py_buffer views[6];
    int held = 0;
    PyObject *result = NULL;
    if (nargs < 1 || nargs > 7) {
        PyErr_SetString(PyExc_TypeError, "syscall(nr, *args): up to 6 arguments");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) {
        PyObject *arg = args[i];
        if (PyLong_Check(arg)) {
            regs[i] = (long)PyLong_AsUnsignedLongLongMask(arg);
            if (regs[i] == -1 && PyErr_Occurred())
                goto done;
        } else if (arg == Py_None && i > 0) {
            regs[i] = 0;
        } else if (i > 0 && PyObject_CheckBuffer(arg)) {
            if (PyObject_GetBuffer(arg, &views[held], PyBUF_SIMPLE) < 0)
                goto done;
            regs[i] = (long)views[held++].buf;
        } else {
            PyErr_Format(PyExc_TypeError, "syscall argument %zd: an int, None or a buffer", i);
            goto done;
        }
    }
    long r;
    int err;
    Py_BEGIN_ALLOW_THREADS
    r = syscall(regs[0], regs[1], regs[2], regs[3], regs[4], regs[5], regs[6]);
    err = errno;
    Py_END_ALLOW_THREADS
    if (r == -1) {
        PyObject *exc = PyObject_CallFunction(PyExc_OSError, "is", err, strerror(err));
        if (exc != NULL) {
            PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
            Py_DECREF(exc);
        }
        goto done;
    }
    result = PyLong_FromLong(r);
done:
    while (held > 0)
        PyBuffer_Release(&views[--held]);
    return result;
}

static PyMethodDef hostcall_methods[] = {
    {"syscall", (PyCFunction)(void (*)(void))hostcall_syscall, METH_FASTCALL,
     "syscall(nr, *args) -> result: one raw host system call (-1: OSError)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef hostcall_module = {PyModuleDef_HEAD_INIT, "_hostcall", NULL, -1, hostcall_methods};

PyMODINIT_FUNC PyInit__hostcall(void) { return PyModule_Create(&hostcall_module); }
