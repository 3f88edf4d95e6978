package term

// Walk calls fn for t and then, depth first, for every subterm: list
// elements and tails, tuple elements, map keys and values, and a fun's
// pid and free variables. Where fn returns false, Walk does not descend
// into that term. The elements of a String (small integers) are not
// visited separately.
func Walk(t Term, fn func(Term) bool) {
	if t == nil || !fn(t) {
		return
	}
	switch x := t.(type) {
	case List:
		for _, e := range x.Elems {
			Walk(e, fn)
		}
		Walk(x.Tail, fn)
	case Tuple:
		for _, e := range x {
			Walk(e, fn)
		}
	case Map:
		for _, p := range x {
			Walk(p.Key, fn)
			Walk(p.Value, fn)
		}
	case Fun:
		Walk(x.Pid, fn)
		for _, e := range x.Free {
			Walk(e, fn)
		}
	}
}
