package webhook

import (
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"sync"

	"gomodules.xyz/jsonpatch/v2"
)

// jsonPatch returns the JSON patch that turns before into after, two values
// of one Kubernetes API type, by walking the two side by side: an operation
// for each field, map entry and list element that differs, nothing for what
// is equal. A value is added whole only where before has none (a nil
// pointer, map or list, an empty field that is omitted, or a struct with
// nothing in it), so a field of the object that this build's API types do
// not know (a newer API server's) is not overwritten: no part of the object
// that sluice leaves alone is written back.
//
// It does what controller-runtime's defaulting handler does (marshal the
// mutated object, then diff two JSON documents, twice) at a fraction of the
// cost: the mutating webhook is on the path of every create.
func jsonPatch(before, after any) []jsonpatch.Operation {
	var ops []jsonpatch.Operation
	diffValues(nil, reflect.ValueOf(before), reflect.ValueOf(after), &ops)
	return ops
}

// A path is built up as the walk descends, one buffer for the whole walk
// (appending to a prefix leaves the caller's prefix alone), and turned into
// a string only for an operation.
type pointer []byte

func (p pointer) field(name string) pointer { return append(append(p, '/'), escape(name)...) }
func (p pointer) index(i int) pointer       { return strconv.AppendInt(append(p, '/'), int64(i), 10) }

func op(kind string, p pointer, v reflect.Value) jsonpatch.Operation {
	if !v.IsValid() {
		return jsonpatch.NewOperation(kind, string(p), nil)
	}
	return jsonpatch.NewOperation(kind, string(p), v.Interface())
}

var marshalerType = reflect.TypeFor[json.Marshaler]()

// typeInfo is what the walk needs of a type, worked out once per type.
type typeInfo struct {
	// leaf types are compared and written as one value: scalars, and types
	// with a JSON form of their own (resource.Quantity, metav1.Time,
	// intstr.IntOrString, []byte).
	leaf   bool
	fields []fieldInfo // of a struct
}

type fieldInfo struct {
	index               int
	name                string // JSON name; empty for an embedded (inline) struct
	omitempty, omitzero bool
}

var typeInfos sync.Map // reflect.Type -> *typeInfo

func infoOf(t reflect.Type) *typeInfo {
	if ti, ok := typeInfos.Load(t); ok {
		return ti.(*typeInfo)
	}
	ti := &typeInfo{}
	switch t.Kind() {
	case reflect.Struct:
		ti.leaf = t.Implements(marshalerType) || reflect.PointerTo(t).Implements(marshalerType)
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			fi := fieldInfo{index: i, name: name,
				omitempty: strings.Contains(","+opts+",", ",omitempty,"), omitzero: strings.Contains(","+opts+",", ",omitzero,")}
			if name == "" && !(strings.Contains(opts, "inline") || f.Anonymous) {
				fi.name = f.Name
			}
			ti.fields = append(ti.fields, fi)
		}
	case reflect.Map, reflect.Pointer:
		ti.leaf = t.Implements(marshalerType)
	case reflect.Slice:
		ti.leaf = t.Elem().Kind() == reflect.Uint8 || t.Implements(marshalerType)
	case reflect.Array:
	default:
		ti.leaf = true
	}
	typeInfos.Store(t, ti)
	return ti
}

// present reports whether a value appears in its object's JSON: nil
// pointers, maps and lists do not, nor does an empty omitempty field or a
// zero omitzero one.
func present(v reflect.Value, omitempty, omitzero bool) bool {
	switch v.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Interface:
		if v.IsNil() {
			return false
		}
	}
	return !(omitempty && isEmpty(v)) && !(omitzero && v.IsZero())
}

// isEmpty is encoding/json's notion of an empty value for omitempty.
func isEmpty(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return v.Len() == 0
	case reflect.Struct:
		return false
	}
	return v.IsZero()
}

func diffValues(p pointer, a, b reflect.Value, ops *[]jsonpatch.Operation) {
	ti := infoOf(b.Type())
	if ti.leaf {
		if !reflect.DeepEqual(a.Interface(), b.Interface()) {
			*ops = append(*ops, op("add", p, b))
		}
		return
	}
	switch b.Kind() {
	case reflect.Pointer:
		if !diffNil(p, a, b, ops) {
			diffValues(p, a.Elem(), b.Elem(), ops)
		}
	case reflect.Struct:
		diffStruct(p, ti, a, b, ops)
	case reflect.Map:
		diffMap(p, a, b, ops)
	case reflect.Slice, reflect.Array:
		diffList(p, a, b, ops)
	}
}

func diffStruct(p pointer, ti *typeInfo, a, b reflect.Value, ops *[]jsonpatch.Operation) {
	for _, f := range ti.fields {
		fa, fb := a.Field(f.index), b.Field(f.index)
		if f.name == "" {
			diffValues(p, fa, fb, ops) // embedded: its fields are this object's
			continue
		}
		// An empty struct may be missing from the document (an API server
		// that omits zero values): it is written whole, not entered.
		emptyStruct := fa.Kind() == reflect.Struct && !infoOf(fa.Type()).leaf && fa.IsZero()
		switch inA, inB := present(fa, f.omitempty, f.omitzero) && !emptyStruct, present(fb, f.omitempty, f.omitzero); {
		case !inA && !inB:
		case !inB:
			if !emptyStruct {
				*ops = append(*ops, op("remove", p.field(f.name), reflect.Value{}))
			}
		case !inA:
			if !emptyStruct || !fb.IsZero() {
				*ops = append(*ops, op("add", p.field(f.name), fb))
			}
		default:
			diffValues(p.field(f.name), fa, fb, ops)
		}
	}
}

// diffNil handles a pointer, map or list that is nil on either side: it
// reports whether that said it all.
func diffNil(p pointer, a, b reflect.Value, ops *[]jsonpatch.Operation) bool {
	switch {
	case a.IsNil() && b.IsNil():
	case b.IsNil():
		*ops = append(*ops, op("remove", p, reflect.Value{}))
	case a.IsNil():
		*ops = append(*ops, op("add", p, b))
	default:
		return false
	}
	return true
}

func diffMap(p pointer, a, b reflect.Value, ops *[]jsonpatch.Operation) {
	if diffNil(p, a, b, ops) {
		return
	}
	iter := b.MapRange()
	for iter.Next() {
		k, vb := iter.Key(), iter.Value()
		if va := a.MapIndex(k); va.IsValid() {
			diffValues(p.field(k.String()), va, vb, ops)
		} else {
			*ops = append(*ops, op("add", p.field(k.String()), vb))
		}
	}
	iter = a.MapRange()
	for iter.Next() {
		if k := iter.Key(); !b.MapIndex(k).IsValid() {
			*ops = append(*ops, op("remove", p.field(k.String()), reflect.Value{}))
		}
	}
}

func diffList(p pointer, a, b reflect.Value, ops *[]jsonpatch.Operation) {
	if b.Kind() == reflect.Slice && diffNil(p, a, b, ops) {
		return
	}
	n := min(a.Len(), b.Len())
	for i := range n {
		diffValues(p.index(i), a.Index(i), b.Index(i), ops)
	}
	for i := n; i < b.Len(); i++ {
		*ops = append(*ops, op("add", append(p, "/-"...), b.Index(i)))
	}
	for i := a.Len() - 1; i >= n; i-- {
		*ops = append(*ops, op("remove", p.index(i), reflect.Value{}))
	}
}

// escape makes a key a JSON Pointer token (RFC 6901).
func escape(key string) string {
	if !strings.ContainsAny(key, "~/") {
		return key
	}
	return strings.ReplaceAll(strings.ReplaceAll(key, "~", "~0"), "/", "~1")
}
