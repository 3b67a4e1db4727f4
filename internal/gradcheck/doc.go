// Package gradcheck checks analytic gradients against central finite differences.
//
// The core, Slices, works on plain slices on top of gonum's diff/fd:
//
//	want_i = (f(x + h e_i) - f(x - h e_i)) / (2h)
//	ok     = |got_i - want_i| <= Abs + Rel*|want_i|   for every i
//
// Graph adapts it to gorgonia: a closure builds a scalar loss from input nodes; the analytic
// gradient comes from the TapeMachine (G.Grad) or the LispMachine (DoDiff), the numerical one from
// forward passes of fresh graphs. Failures name the input, the index, got and want.
//
// Finite differences are exact only away from kinks: callers keep test points at least a few
// steps from |x| = beta and from x = 0 where f' jumps.
package gradcheck
