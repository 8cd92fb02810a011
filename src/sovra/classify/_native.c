/* The scanner's passes over a whole text, compiled: folding (sovra.classify._fold),
 * the digit runs (sovra.classify._runs), literal words (sovra.classify._words) and the
 * offsets of the term search (sovra.classify.special).
 *
 * fold(), occurrences(), windows(), segments(), spans() and code_point_offsets() here
 * give exactly what the Python functions of the same names give; those stay as the
 * reference, and as the fallback where this module is not built, and tests compare the
 * two. The Python versions document the rules; this file only restates them over code
 * points.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#define IS_DIGIT(c) ((c) >= '0' && (c) <= '9')
#define IS_ALNUM_ASCII(c) \
    (IS_DIGIT(c) || ((c) >= 'A' && (c) <= 'Z') || ((c) >= 'a' && (c) <= 'z'))
#define IS_SEPARATOR(c) ((c) == '-' || (c) == '.' || (c) == '/' || (c) == ' ')
#define IS_OPENER(c) ((c) == '+' || (c) == '(')

/* fold(text, table) -> str: each code point c below len(table) with table[c] != 0
 * replaced by that ASCII character; text itself when nothing is replaced. */
static PyObject *
fold(PyObject *module, PyObject *args)
{
    PyObject *text;
    Py_buffer table;
    if (!PyArg_ParseTuple(args, "Uy*", &text, &table)) {
        return NULL;
    }
    const unsigned char *map = table.buf;
    const Py_ssize_t mapped = table.len;
    const int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    const Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    /* First pass: is anything replaced, and the largest code point of the result (a
     * string must be made in the narrowest kind that holds it). */
    Py_UCS4 widest = 0;
    Py_ssize_t replaced = 0;
    if (!PyUnicode_IS_ASCII(text)) {
        for (Py_ssize_t i = 0; i < n; i++) {
            Py_UCS4 c = PyUnicode_READ(kind, data, i);
            if (c < (Py_UCS4)mapped && map[c] != 0) {
                c = map[c];
                replaced++;
            }
            if (c > widest) {
                widest = c;
            }
        }
    }
    if (replaced == 0) {
        PyBuffer_Release(&table);
        return Py_NewRef(text);
    }
    PyObject *folded = PyUnicode_New(n, widest);
    if (folded == NULL) {
        PyBuffer_Release(&table);
        return NULL;
    }
    const int out_kind = PyUnicode_KIND(folded);
    void *out = PyUnicode_DATA(folded);
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c < (Py_UCS4)mapped && map[c] != 0) {
            c = map[c];
        }
        PyUnicode_WRITE(out_kind, out, i, c);
    }
    PyBuffer_Release(&table);
    return folded;
}

/* occurrences(text, words) -> list[list[int]]: for each word, the offset of each of
 * its occurrences in text, overlapping ones included, in order (what str.find from one
 * past the last occurrence gives, repeated). */
#define MAX_WORDS 64
static PyObject *
occurrences(PyObject *module, PyObject *args)
{
    PyObject *text, *words;
    if (!PyArg_ParseTuple(args, "UO!", &text, &PyTuple_Type, &words)) {
        return NULL;
    }
    const Py_ssize_t count = PyTuple_GET_SIZE(words);
    if (count > MAX_WORDS) {
        PyErr_SetString(PyExc_ValueError, "too many words");
        return NULL;
    }
    Py_UCS4 firsts[MAX_WORDS];
    for (Py_ssize_t w = 0; w < count; w++) {
        PyObject *word = PyTuple_GET_ITEM(words, w);
        if (!PyUnicode_Check(word) || PyUnicode_GET_LENGTH(word) == 0) {
            PyErr_SetString(PyExc_TypeError, "words must be non-empty strings");
            return NULL;
        }
        firsts[w] = PyUnicode_READ_CHAR(word, 0);
    }
    PyObject *found = PyList_New(count);
    if (found == NULL) {
        return NULL;
    }
    for (Py_ssize_t w = 0; w < count; w++) {
        PyObject *starts = PyList_New(0);
        if (starts == NULL) {
            Py_DECREF(found);
            return NULL;
        }
        PyList_SET_ITEM(found, w, starts);
    }
    const Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    for (Py_ssize_t w = 0; w < count; w++) {
        /* One word at a time: its first character is found with the same search
         * str.find uses, and the rest compared only there. */
        PyObject *word = PyTuple_GET_ITEM(words, w);
        const Py_ssize_t length = PyUnicode_GET_LENGTH(word);
        Py_ssize_t at = 0;
        while (at + length <= n) {
            at = PyUnicode_FindChar(text, firsts[w], at, n - length + 1, 1);
            if (at == -2) {
                Py_DECREF(found);
                return NULL;
            }
            if (at < 0) {
                break;
            }
            Py_ssize_t matched = PyUnicode_Tailmatch(text, word, at, at + length, -1);
            if (matched < 0) {
                Py_DECREF(found);
                return NULL;
            }
            if (matched == 1) {
                PyObject *offset = PyLong_FromSsize_t(at);
                if (offset == NULL || PyList_Append(PyList_GET_ITEM(found, w), offset) < 0) {
                    Py_XDECREF(offset);
                    Py_DECREF(found);
                    return NULL;
                }
                Py_DECREF(offset);
            }
            at++;
        }
    }
    return found;
}

/* Append (lo, hi) clipped to [0, n]. */
static int
append_window(PyObject *found, Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t n)
{
    PyObject *pair = Py_BuildValue("(nn)", lo > 0 ? lo : 0, hi < n ? hi : n);
    if (pair == NULL) {
        return -1;
    }
    int failed = PyList_Append(found, pair);
    Py_DECREF(pair);
    return failed;
}

/* windows(text, margin, step) -> tuple[tuple[int, int], ...] */
static PyObject *
windows(PyObject *module, PyObject *args)
{
    PyObject *text;
    Py_ssize_t margin, step;
    if (!PyArg_ParseTuple(args, "Unn", &text, &margin, &step)) {
        return NULL;
    }
    const int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    const Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    PyObject *found = PyList_New(0);
    if (found == NULL) {
        return NULL;
    }
    Py_ssize_t lo = -1, hi = -1, position = 0;
    for (;;) {
        Py_ssize_t first = position;
        while (first < n && !IS_DIGIT(PyUnicode_READ(kind, data, first))) {
            first++;
        }
        if (first >= n) {
            break;
        }
        position = first + 1 + step;
        if (position > n) {
            position = n;
        }
        Py_ssize_t start = first - margin, end = position + margin;
        if (start > hi) {
            if (hi >= 0 && append_window(found, lo, hi, n) < 0) {
                Py_DECREF(found);
                return NULL;
            }
            lo = start;
        }
        hi = end;
    }
    if (hi >= 0 && append_window(found, lo, hi, n) < 0) {
        Py_DECREF(found);
        return NULL;
    }
    PyObject *result = PyList_AsTuple(found);
    Py_DECREF(found);
    return result;
}

/* An instance of a tuple subclass (a NamedTuple) with the given items, references
 * stolen; NULL with every item released on failure. */
static PyObject *
new_tuple(PyTypeObject *type, Py_ssize_t size, PyObject **items)
{
    PyObject *made = type->tp_alloc(type, size);
    if (made == NULL) {
        for (Py_ssize_t i = 0; i < size; i++) {
            Py_XDECREF(items[i]);
        }
        return NULL;
    }
    for (Py_ssize_t i = 0; i < size; i++) {
        if (items[i] == NULL) {
            for (Py_ssize_t j = i + 1; j < size; j++) {
                Py_XDECREF(items[j]);
            }
            Py_DECREF(made);
            return NULL;
        }
        PyTuple_SET_ITEM(made, i, items[i]);
    }
    return made;
}

typedef struct {
    PyObject *text;
    int kind;
    const void *data;
    Py_ssize_t n;
    PyTypeObject *segment_type;
    PyTypeObject *group_type;
    Py_ssize_t longest_part; /* groups longer than this are whole numbers */
    Py_ssize_t max_groups;
    PyObject *found;
} Pass;

#define READ(pass, i) PyUnicode_READ((pass)->kind, (pass)->data, (i))

/* Append Segment(groups, lead, end, digits) for bounds[first:last] (pairs of offsets). */
static int
append_segment(Pass *pass, const Py_ssize_t *bounds, Py_ssize_t first, Py_ssize_t last)
{
    Py_ssize_t count = last - first;
    Py_ssize_t lead = bounds[2 * first];
    if (lead > 0 && IS_OPENER(READ(pass, lead - 1))) {
        lead--;
    }
    Py_ssize_t width = 0;
    for (Py_ssize_t i = first; i < last; i++) {
        width += bounds[2 * i + 1] - bounds[2 * i];
    }
    PyObject *digits = PyUnicode_New(width, 127);
    if (digits == NULL) {
        return -1;
    }
    Py_UCS1 *out = PyUnicode_1BYTE_DATA(digits);
    for (Py_ssize_t i = first; i < last; i++) {
        for (Py_ssize_t at = bounds[2 * i]; at < bounds[2 * i + 1]; at++) {
            *out++ = (Py_UCS1)READ(pass, at);
        }
    }
    PyObject *groups = PyTuple_New(count);
    if (groups == NULL) {
        Py_DECREF(digits);
        return -1;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *pair[2] = {
            PyLong_FromSsize_t(bounds[2 * (first + i)]),
            PyLong_FromSsize_t(bounds[2 * (first + i) + 1]),
        };
        PyObject *group = new_tuple(pass->group_type, 2, pair);
        if (group == NULL) {
            Py_DECREF(groups);
            Py_DECREF(digits);
            return -1;
        }
        PyTuple_SET_ITEM(groups, i, group);
    }
    PyObject *items[4] = {
        groups,
        PyLong_FromSsize_t(lead),
        PyLong_FromSsize_t(bounds[2 * last - 1]),
        digits,
    };
    PyObject *segment = new_tuple(pass->segment_type, 4, items);
    if (segment == NULL) {
        return -1;
    }
    int failed = PyList_Append(pass->found, segment);
    Py_DECREF(segment);
    return failed;
}

/* The segments of the run text[start:end] (its opening "+" or "(" already skipped). */
static int
split_run(Pass *pass, Py_ssize_t start, Py_ssize_t end)
{
    /* At most one group per two characters of the run. */
    Py_ssize_t capacity = (end - start) / 2 + 1;
    Py_ssize_t *bounds = PyMem_New(Py_ssize_t, 2 * capacity);
    if (bounds == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t count = 0;
    for (Py_ssize_t at = start; at < end;) {
        if (!IS_DIGIT(READ(pass, at))) {
            at++;
            continue;
        }
        Py_ssize_t group_start = at;
        while (at < end && IS_DIGIT(READ(pass, at))) {
            at++;
        }
        bounds[2 * count] = group_start;
        bounds[2 * count + 1] = at;
        count++;
    }
    int failed = 0;
    Py_ssize_t first = 0;
    for (Py_ssize_t i = 1; i < count && !failed; i++) {
        Py_ssize_t previous_start = bounds[2 * i - 2], previous_end = bounds[2 * i - 1];
        Py_ssize_t group_start = bounds[2 * i], group_end = bounds[2 * i + 1];
        if (group_start - previous_end > 2
            || (group_end - group_start > pass->longest_part
                && previous_end - previous_start > pass->longest_part)
            || i - first >= pass->max_groups) {
            failed = append_segment(pass, bounds, first, i);
            first = i;
        }
    }
    if (!failed) {
        failed = append_segment(pass, bounds, first, count);
    }
    PyMem_Free(bounds);
    return failed;
}

/* Where the run starting at *at* ends, or -1 when none starts there; runs are read
 * within [0, hi) and may look at the character before *at*, as the regular expression
 * _runs._RUN does when searched with an end position. */
static Py_ssize_t
run_end(Pass *pass, Py_ssize_t at, Py_ssize_t hi)
{
    Py_UCS4 c = READ(pass, at);
    if (at > 0 && IS_ALNUM_ASCII(READ(pass, at - 1))) {
        return -1;
    }
    Py_ssize_t position = at + 1;
    if (IS_OPENER(c)) {
        if (position >= hi || !IS_DIGIT(READ(pass, position))) {
            return -1;
        }
        position++;
    }
    for (;;) {
        Py_ssize_t q = position;
        if (q < hi && READ(pass, q) == ')') {
            q++;
        }
        for (int seps = 0; seps < 2 && q < hi && IS_SEPARATOR(READ(pass, q)); seps++) {
            q++;
        }
        if (q < hi && READ(pass, q) == '(') {
            q++;
        }
        if (q < hi && IS_DIGIT(READ(pass, q))) {
            position = q + 1;
        }
        else {
            return position;
        }
    }
}

/* segments(text, windows, segment_type, group_type, longest_part, max_groups)
 *     -> tuple[Segment, ...] */
static PyObject *
segments(PyObject *module, PyObject *args)
{
    Pass pass;
    PyObject *spans;
    if (!PyArg_ParseTuple(args, "UO!O!O!nn", &pass.text, &PyTuple_Type, &spans,
                          &PyType_Type, &pass.segment_type, &PyType_Type,
                          &pass.group_type, &pass.longest_part, &pass.max_groups)) {
        return NULL;
    }
    if (!PyType_IsSubtype(pass.segment_type, &PyTuple_Type)
        || !PyType_IsSubtype(pass.group_type, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "segment and group types must be tuple types");
        return NULL;
    }
    pass.kind = PyUnicode_KIND(pass.text);
    pass.data = PyUnicode_DATA(pass.text);
    pass.n = PyUnicode_GET_LENGTH(pass.text);
    pass.found = PyList_New(0);
    if (pass.found == NULL) {
        return NULL;
    }
    for (Py_ssize_t w = 0; w < PyTuple_GET_SIZE(spans); w++) {
        Py_ssize_t lo, hi;
        if (!PyArg_ParseTuple(PyTuple_GET_ITEM(spans, w), "nn", &lo, &hi)) {
            goto error;
        }
        if (lo < 0 || hi > pass.n || lo > hi) {
            PyErr_SetString(PyExc_ValueError, "window outside the text");
            goto error;
        }
        Py_ssize_t at = lo;
        while (at < hi) {
            Py_UCS4 c = READ(&pass, at);
            if (!IS_DIGIT(c) && !IS_OPENER(c)) {
                at++;
                continue;
            }
            Py_ssize_t end = run_end(&pass, at, hi);
            if (end < 0) {
                at++;
                continue;
            }
            Py_ssize_t start = IS_OPENER(c) ? at + 1 : at;
            Py_ssize_t i = start;
            while (i < end && IS_DIGIT(READ(&pass, i))) {
                i++;
            }
            if (i == end) { /* one unbroken group, most runs */
                Py_ssize_t bounds[2] = {start, end};
                if (append_segment(&pass, bounds, 0, 1) < 0) {
                    goto error;
                }
            }
            else if (split_run(&pass, start, end) < 0) {
                goto error;
            }
            at = end;
        }
    }
    PyObject *result = PyList_AsTuple(pass.found);
    Py_DECREF(pass.found);
    return result;
error:
    Py_DECREF(pass.found);
    return NULL;
}

/* spans(text, segment, lengths) -> list[tuple[int, int, str]]: the contiguous stretches
 * of a segment's groups, most digits first, as _runs.spans gives them. lengths is a set
 * of ints (only stretches with that many digits) or None (all). */
typedef struct {
    Py_ssize_t start, end, first, last; /* text span; digit offsets in the joined digits */
} Stretch;

static int
length_wanted(PyObject *lengths, Py_ssize_t total)
{
    if (lengths == Py_None) {
        return 1;
    }
    PyObject *key = PyLong_FromSsize_t(total);
    if (key == NULL) {
        return -1;
    }
    int found = PySet_Contains(lengths, key);
    Py_DECREF(key);
    return found;
}

static int
length_bounds(PyObject *lengths, Py_ssize_t *shortest, Py_ssize_t *longest)
{
    PyObject *iterator = PyObject_GetIter(lengths);
    if (iterator == NULL) {
        return -1;
    }
    int seen = 0;
    PyObject *item;
    while ((item = PyIter_Next(iterator)) != NULL) {
        Py_ssize_t value = PyLong_AsSsize_t(item);
        Py_DECREF(item);
        if (value == -1 && PyErr_Occurred()) {
            Py_DECREF(iterator);
            return -1;
        }
        if (!seen || value < *shortest) {
            *shortest = value;
        }
        if (!seen || value > *longest) {
            *longest = value;
        }
        seen = 1;
    }
    Py_DECREF(iterator);
    if (PyErr_Occurred()) {
        return -1;
    }
    if (!seen) {
        PyErr_SetString(PyExc_ValueError, "lengths is empty");
        return -1;
    }
    return 0;
}

static PyObject *
stretch_tuple(PyObject *joined, const Stretch *s)
{
    PyObject *digits = PyUnicode_Substring(joined, s->first, s->last);
    if (digits == NULL) {
        return NULL;
    }
    return Py_BuildValue("(nnN)", s->start, s->end, digits);
}

static PyObject *
spans(PyObject *module, PyObject *args)
{
    PyObject *text, *segment, *lengths;
    if (!PyArg_ParseTuple(args, "UO!O", &text, &PyTuple_Type, &segment, &lengths)) {
        return NULL;
    }
    if (lengths != Py_None && !PyAnySet_Check(lengths)) {
        PyErr_SetString(PyExc_TypeError, "lengths must be a set of ints or None");
        return NULL;
    }
    PyObject *groups, *joined;
    Py_ssize_t lead, end;
    if (!PyArg_ParseTuple(segment, "O!nnU", &PyTuple_Type, &groups, &lead, &end, &joined)) {
        return NULL;
    }
    const Py_ssize_t count = PyTuple_GET_SIZE(groups);
    const Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    const Py_ssize_t digits = PyUnicode_GET_LENGTH(joined);
    if (count == 1) { /* most numbers: one unbroken run of digits */
        int wanted = length_wanted(lengths, digits);
        if (wanted <= 0) {
            return wanted < 0 ? NULL : PyList_New(0);
        }
        Stretch whole = {lead, end, 0, digits};
        PyObject *item = stretch_tuple(joined, &whole);
        if (item == NULL) {
            return NULL;
        }
        PyObject *out = PyList_New(1);
        if (out == NULL) {
            Py_DECREF(item);
            return NULL;
        }
        PyList_SET_ITEM(out, 0, item);
        return out;
    }
    Py_ssize_t shortest = 1, longest = digits;
    if (lengths != Py_None && length_bounds(lengths, &shortest, &longest) < 0) {
        return NULL;
    }
    if (digits < shortest) {
        return PyList_New(0);
    }
    /* Group bounds and the running digit count before each group. */
    Py_ssize_t *at = PyMem_New(Py_ssize_t, 3 * count + 1);
    Stretch *found = PyMem_New(Stretch, count * (count + 1) / 2 + 1);
    if (at == NULL || found == NULL) {
        PyMem_Free(at);
        PyMem_Free(found);
        return PyErr_NoMemory();
    }
    Py_ssize_t *starts = at, *ends = at + count, *offsets = at + 2 * count;
    Py_ssize_t kept = 0;
    PyObject *out = NULL;
    offsets[0] = 0;
    for (Py_ssize_t g = 0; g < count; g++) {
        if (!PyArg_ParseTuple(PyTuple_GET_ITEM(groups, g), "nn", &starts[g], &ends[g])) {
            goto done;
        }
        if (starts[g] < 0 || ends[g] > n || starts[g] > ends[g]) {
            PyErr_SetString(PyExc_ValueError, "group outside the text");
            goto done;
        }
        offsets[g + 1] = offsets[g] + ends[g] - starts[g];
    }
    if (offsets[count] > digits) {
        PyErr_SetString(PyExc_ValueError, "groups hold more digits than the segment");
        goto done;
    }
    const int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    for (Py_ssize_t i = 0; i < count; i++) {
        if (offsets[count] - offsets[i] < shortest) {
            break; /* every stretch from here on is too short */
        }
        Py_ssize_t start = starts[i];
        if (start > 0 && IS_OPENER(PyUnicode_READ(kind, data, start - 1))) {
            start--;
        }
        for (Py_ssize_t j = i; j < count; j++) {
            Py_ssize_t total = offsets[j + 1] - offsets[i];
            if (total > longest) {
                break; /* and so is every longer one */
            }
            int wanted = length_wanted(lengths, total);
            if (wanted < 0) {
                goto done;
            }
            if (wanted) {
                Stretch s = {start, ends[j], offsets[i], offsets[j + 1]};
                /* Insert in order: most digits first, then earliest start; stable. */
                Py_ssize_t k = kept++;
                while (k > 0) {
                    const Stretch *p = &found[k - 1];
                    Py_ssize_t p_len = p->last - p->first;
                    if (p_len > total || (p_len == total && p->start <= start)) {
                        break;
                    }
                    found[k] = *p;
                    k--;
                }
                found[k] = s;
            }
        }
    }
    out = PyList_New(kept);
    if (out == NULL) {
        goto done;
    }
    for (Py_ssize_t k = 0; k < kept; k++) {
        PyObject *item = stretch_tuple(joined, &found[k]);
        if (item == NULL) {
            Py_CLEAR(out);
            goto done;
        }
        PyList_SET_ITEM(out, k, item);
    }
done:
    PyMem_Free(at);
    PyMem_Free(found);
    return out;
}

/* code_point_offsets(data, matches) -> list[tuple[int, int, int]]: matches of a search
 * over the UTF-8 bytes data, (index, start, end) with byte offsets, given with code
 * point offsets instead, as special._code_point_offsets gives them. An offset inside a
 * character or past the end is refused. */
#define IS_CONTINUATION(b) (((b) & 0xC0) == 0x80)

static int
count_code_points(const unsigned char *data, Py_ssize_t size, Py_ssize_t *position,
                  Py_ssize_t *points, Py_ssize_t offset)
{
    if (offset < 0 || offset > size || (offset < size && IS_CONTINUATION(data[offset]))) {
        PyErr_SetString(PyExc_ValueError, "offset outside the data or inside a character");
        return -1;
    }
    if (offset < *position) { /* matches out of order: count again from the start */
        *position = 0;
        *points = 0;
    }
    for (Py_ssize_t i = *position; i < offset; i++) {
        *points += !IS_CONTINUATION(data[i]);
    }
    *position = offset;
    return 0;
}

static PyObject *
code_point_offsets(PyObject *module, PyObject *args)
{
    Py_buffer buffer;
    PyObject *matches;
    if (!PyArg_ParseTuple(args, "y*O!", &buffer, &PyList_Type, &matches)) {
        return NULL;
    }
    const unsigned char *data = buffer.buf;
    const Py_ssize_t size = buffer.len;
    const Py_ssize_t count = PyList_GET_SIZE(matches);
    PyObject *out = PyList_New(count);
    if (out == NULL) {
        PyBuffer_Release(&buffer);
        return NULL;
    }
    Py_ssize_t position = 0, points = 0;
    for (Py_ssize_t k = 0; k < count; k++) {
        PyObject *index;
        Py_ssize_t start, end, first;
        if (!PyArg_ParseTuple(PyList_GET_ITEM(matches, k), "Onn", &index, &start, &end)) {
            goto error;
        }
        if (end < start) {
            PyErr_SetString(PyExc_ValueError, "a match ends before it starts");
            goto error;
        }
        if (count_code_points(data, size, &position, &points, start) < 0) {
            goto error;
        }
        first = points;
        if (count_code_points(data, size, &position, &points, end) < 0) {
            goto error;
        }
        PyObject *item = Py_BuildValue("(Onn)", index, first, points);
        if (item == NULL) {
            goto error;
        }
        PyList_SET_ITEM(out, k, item);
    }
    PyBuffer_Release(&buffer);
    return out;
error:
    PyBuffer_Release(&buffer);
    Py_DECREF(out);
    return NULL;
}

static PyMethodDef methods[] = {
    {"fold", fold, METH_VARARGS,
     "fold(text, table): text with each code point c that table[c] names replaced."},
    {"occurrences", occurrences, METH_VARARGS,
     "occurrences(text, words): each word's offsets in text, overlapping ones included."},
    {"windows", windows, METH_VARARGS,
     "windows(text, margin, step): the stretches of text within margin of a digit."},
    {"segments", segments, METH_VARARGS,
     "segments(text, windows, segment_type, group_type, longest_part, max_groups): "
     "the digit segments of text inside the windows."},
    {"spans", spans, METH_VARARGS,
     "spans(text, segment, lengths): a segment's stretches of groups, most digits first."},
    {"code_point_offsets", code_point_offsets, METH_VARARGS,
     "code_point_offsets(data, matches): byte offsets of matches in UTF-8 data as code "
     "point offsets."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "_native",
    .m_doc = "The scanner's passes over a whole text, compiled.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__native(void)
{
    return PyModule_Create(&module_def);
}
