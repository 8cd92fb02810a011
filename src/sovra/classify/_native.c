/* The scanner's passes over a whole text, compiled: folding (sovra.classify._fold),
 * the digit runs (sovra.classify._runs), literal words (sovra.classify._words) and the
 * offsets of the term search (sovra.classify.special).
 *
 * fold(), occurrences(), windows(), segments(), spans() and code_point_offsets() here
 * give exactly what the Python functions of the same names give, and id_checks() and
 * luhn() what the identity-number checks of sovra.classify.ids and the Luhn sum of
 * sovra.classify.finance give; those stay as the
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

/* id_checks(digits) -> int: which numeric identity schemes of sovra.classify.ids accept
 * digits, as the restated checks there answer (_pesel_valid, _idnr_valid, ...), one bit
 * per scheme (ID_* below). Only the schemes of the digits' length are asked; 0 for
 * anything that is not 9 to 15 ASCII digits. luhn(digits) -> int: the Luhn checksum of
 * ASCII digits (0 when valid), as finance._luhn_checksum gives it; -1 for anything else
 * or more than 64 digits. Both read at most MAX_ID_DIGITS characters of any string. */
/* Whether text is a str; a TypeError set when it is not. */
static int
is_str(PyObject *text)
{
    if (!PyUnicode_Check(text)) {
        PyErr_Format(PyExc_TypeError, "expected str, not %.100s", Py_TYPE(text)->tp_name);
        return 0;
    }
    return 1;
}

#define ID_PESEL 1
#define ID_IDNR 2
#define ID_NIP 4
#define ID_REGON 8
#define ID_MST 16
#define ID_CCCD 32
#define ID_NIR 64
#define ID_ITIN 128
#define ID_SSN 256
#define MAX_ID_DIGITS 64

/* The digits of text as values 0..9; the count, or -1 when text is not ASCII digits or
 * is longer than limit. */
static Py_ssize_t
ascii_digits(PyObject *text, int *d, Py_ssize_t limit)
{
    if (!PyUnicode_IS_ASCII(text)) {
        return -1;
    }
    const Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    if (n > limit) {
        return -1;
    }
    const Py_UCS1 *data = PyUnicode_1BYTE_DATA(text);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!IS_DIGIT(data[i])) {
            return -1;
        }
        d[i] = data[i] - '0';
    }
    return n;
}

static int
weighted(const int *d, const int *weights, int count)
{
    int total = 0;
    for (int i = 0; i < count; i++) {
        total += d[i] * weights[i];
    }
    return total;
}

static int
number_of(const int *d, int count)
{
    int value = 0;
    for (int i = 0; i < count; i++) {
        value = value * 10 + d[i];
    }
    return value;
}

static int
is_date(int year, int month, int day)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (month < 1 || month > 12 || day < 1) {
        return 0;
    }
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return day <= days[month - 1] + (month == 2 && leap);
}

static int
pesel_valid(const int *d)
{
    static const int w[11] = {1, 3, 7, 9, 1, 3, 7, 9, 1, 3, 1};
    static const int century[5] = {1900, 2000, 2100, 2200, 1800};
    if (weighted(d, w, 11) % 10 != 0) {
        return 0;
    }
    int month = number_of(d + 2, 2);
    return is_date(number_of(d, 2) + century[month / 20], month % 20, number_of(d + 4, 2));
}

static int
idnr_valid(const int *d)
{
    if (d[0] == 0) {
        return 0;
    }
    int state = 5;
    for (int i = 0; i < 11; i++) {
        state = ((state ? state : 10) * 2 % 11 + d[i]) % 10;
    }
    if (state != 1) {
        return 0;
    }
    int counts[10] = {0};
    for (int i = 0; i < 10; i++) {
        counts[d[i]]++;
    }
    int distinct = 0, most = 0;
    for (int v = 0; v < 10; v++) {
        distinct += counts[v] > 0;
        most = counts[v] > most ? counts[v] : most;
    }
    return distinct == 9 || (distinct == 8 && most == 3);
}

static int
nip_valid(const int *d)
{
    static const int w[10] = {6, 5, 7, 2, 3, 4, 5, 6, 7, -1};
    return weighted(d, w, 10) % 11 == 0;
}

static int
regon_valid(const int *d, Py_ssize_t n)
{
    static const int w9[8] = {8, 9, 2, 3, 4, 5, 6, 7};
    static const int w14[13] = {2, 4, 8, 5, 0, 9, 7, 3, 6, 1, 2, 4, 8};
    if (n == 14 && weighted(d, w14, 13) % 11 % 10 != d[13]) {
        return 0;
    }
    return weighted(d, w9, 8) % 11 % 10 == d[8];
}

static int
mst_valid(const int *d, Py_ssize_t n)
{
    static const int w[9] = {31, 29, 23, 19, 17, 13, 7, 5, 3};
    if (number_of(d + 2, 7) == 0 || (n == 13 && number_of(d + 10, 3) == 0)) {
        return 0; /* no serial, no branch */
    }
    return 10 - weighted(d, w, 9) % 11 == d[9];
}

static int
nir_valid(const int *d)
{
    long long value = 0;
    for (int i = 0; i < 13; i++) {
        value = value * 10 + d[i];
    }
    return 97 - (int)(value % 97) == number_of(d + 13, 2);
}

static int
itin_valid(const int *d)
{
    int group = number_of(d + 3, 2);
    return d[0] == 9 && group >= 70 && group != 89 && group != 93;
}

static int
ssn_valid(const int *d)
{
    int area = number_of(d, 3), group = number_of(d + 3, 2), serial = number_of(d + 5, 4);
    if (area == 0 || area == 666 || d[0] == 9 || group == 0 || serial == 0) {
        return 0;
    }
    int whole = number_of(d, 9); /* numbers published in advertising, never issued */
    return whole != 78051120 && whole != 457555462 && whole != 219099999;
}

static PyObject *
id_checks(PyObject *module, PyObject *text)
{
    if (!is_str(text)) {
        return NULL;
    }
    int d[MAX_ID_DIGITS];
    const Py_ssize_t n = ascii_digits(text, d, 15);
    long passed = 0;
    switch (n) {
    case 9:
        passed = (regon_valid(d, n) ? ID_REGON : 0) | ID_CCCD | (itin_valid(d) ? ID_ITIN : 0) |
                 (ssn_valid(d) ? ID_SSN : 0);
        break;
    case 10:
        passed = (nip_valid(d) ? ID_NIP : 0) | (mst_valid(d, n) ? ID_MST : 0);
        break;
    case 11:
        passed = (pesel_valid(d) ? ID_PESEL : 0) | (idnr_valid(d) ? ID_IDNR : 0);
        break;
    case 12: {
        int province = number_of(d, 3);
        passed = province >= 1 && province <= 96 ? ID_CCCD : 0;
        break;
    }
    case 13:
        passed = mst_valid(d, n) ? ID_MST : 0;
        break;
    case 14:
        passed = regon_valid(d, n) ? ID_REGON : 0;
        break;
    case 15:
        passed = nir_valid(d) ? ID_NIR : 0;
        break;
    default:
        break;
    }
    return PyLong_FromLong(passed);
}

static PyObject *
luhn(PyObject *module, PyObject *text)
{
    if (!is_str(text)) {
        return NULL;
    }
    int d[MAX_ID_DIGITS];
    const Py_ssize_t n = ascii_digits(text, d, MAX_ID_DIGITS);
    if (n < 0) {
        return PyLong_FromLong(-1);
    }
    static const int doubled[10] = {0, 2, 4, 6, 8, 1, 3, 5, 7, 9};
    int total = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        total += (n - 1 - i) % 2 ? doubled[d[i]] : d[i];
    }
    return PyLong_FromLong(total % 10);
}

/* account_shapes(text, windows) -> int: whether text holds where an IBAN or an EU VAT
 * number can start, as finance._IBAN_SHAPE and finance._VAT_SHAPE find it in the
 * text's digit windows: bit 1, two ASCII letters at a word start then two digits; bit
 * 2, two capitals at a word start, an optional space, then a digit after at most three
 * capitals and digits. A word start is the text's start or a character that is not an
 * ASCII letter or digit, as the windows' NUL and "?" read.
 *
 * letter_shapes(text, windows) -> int: 1 where an identifier that opens with a capital
 * (ids._ALNUM_LETTER: a Spanish NIE, a British NINO, a Polish ID card or passport, a
 * German ID card) may start in text. Each opens with a capital at a word start, then
 * more capitals, then a digit: right after at most nine capitals, or after at most
 * three and one space or hyphen. 0 means none of the shapes occurs.
 *
 * Every shape holds a digit within ten characters of its start, so only starts inside
 * the windows (which reach _runs.MARGIN characters either side of every digit) are
 * tried; a shape may read on past a window's end. */
#define IS_UPPER(c) ((c) >= 'A' && (c) <= 'Z')
#define IS_ALPHA_ASCII(c) (IS_UPPER(c) || ((c) >= 'a' && (c) <= 'z'))

typedef struct {
    int kind;
    const void *data;
    Py_ssize_t n;
} Text;

#define AT(t, i) PyUnicode_READ((t)->kind, (t)->data, (i))

static int
account_shape_at(const Text *t, Py_ssize_t i)
{
    if (i + 2 >= t->n || !IS_ALPHA_ASCII(AT(t, i)) || !IS_ALPHA_ASCII(AT(t, i + 1))) {
        return 0;
    }
    int found = 0;
    if (i + 3 < t->n && IS_DIGIT(AT(t, i + 2)) && IS_DIGIT(AT(t, i + 3))) {
        found |= 1;
    }
    if (!IS_UPPER(AT(t, i)) || !IS_UPPER(AT(t, i + 1))) {
        return found;
    }
    Py_ssize_t j = i + 2;
    if (AT(t, j) == ' ') {
        j++;
    }
    for (Py_ssize_t k = j; k < t->n && k < j + 4; k++) {
        const Py_UCS4 d = AT(t, k);
        if (IS_DIGIT(d)) {
            return found | 2;
        }
        if (!IS_UPPER(d)) {
            break;
        }
    }
    return found;
}

static int
letter_shape_at(const Text *t, Py_ssize_t i)
{
    if (!IS_UPPER(AT(t, i))) {
        return 0;
    }
    Py_ssize_t j = i + 1;
    while (j < t->n && j - i <= 9 && IS_UPPER(AT(t, j))) {
        j++;
    }
    if (j >= t->n || j - i > 9) {
        return 0;
    }
    const Py_UCS4 next = AT(t, j);
    if (IS_DIGIT(next)) {
        return 1;
    }
    return (next == ' ' || next == '-') && j - i <= 3 && j + 1 < t->n && IS_DIGIT(AT(t, j + 1));
}

/* The bits that shape_at finds at the word starts inside windows, stopping once every
 * bit of all is found. */
static PyObject *
shapes_in_windows(PyObject *args, int (*shape_at)(const Text *, Py_ssize_t), int all)
{
    PyObject *text, *spans;
    if (!PyArg_ParseTuple(args, "UO!", &text, &PyTuple_Type, &spans)) {
        return NULL;
    }
    Text t = {PyUnicode_KIND(text), PyUnicode_DATA(text), PyUnicode_GET_LENGTH(text)};
    int found = 0;
    for (Py_ssize_t w = 0; w < PyTuple_GET_SIZE(spans) && found != all; w++) {
        Py_ssize_t lo, hi;
        if (!PyArg_ParseTuple(PyTuple_GET_ITEM(spans, w), "nn", &lo, &hi)) {
            return NULL;
        }
        if (lo < 0 || hi > t.n || lo > hi) {
            PyErr_SetString(PyExc_ValueError, "window outside the text");
            return NULL;
        }
        for (Py_ssize_t i = lo; i < hi && found != all; i++) {
            if (i == 0 || !IS_ALNUM_ASCII(AT(&t, i - 1))) {
                found |= shape_at(&t, i);
            }
        }
    }
    return PyLong_FromLong(found);
}

static PyObject *
account_shapes(PyObject *module, PyObject *args)
{
    return shapes_in_windows(args, account_shape_at, 3);
}

static PyObject *
letter_shapes(PyObject *module, PyObject *args)
{
    return shapes_in_windows(args, letter_shape_at, 1);
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
    {"id_checks", id_checks, METH_O,
     "id_checks(digits): a bit for each numeric identity scheme that accepts digits."},
    {"account_shapes", account_shapes, METH_VARARGS,
     "account_shapes(text, windows): bit 1 where an IBAN can start, bit 2 a VAT number."},
    {"letter_shapes", letter_shapes, METH_VARARGS,
     "letter_shapes(text, windows): 1 where an identifier opening with a capital may start."},
    {"luhn", luhn, METH_O, "luhn(digits): the Luhn checksum of digits, 0 when valid."},
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
