package kit

import (
	"errors"
	"fmt"
	"io"
)

// Shamir secret sharing over GF(2^8), byte by byte, with the AES field
// polynomial x^8 + x^4 + x^3 + x + 1 (0x11B). A share is the value of a
// random polynomial of degree threshold-1, whose constant term is the
// secret byte, at the share's x-coordinate (1…255). Any threshold shares
// determine the polynomial and so the secret (Lagrange interpolation at 0);
// fewer are consistent with every secret, so they reveal nothing about it.
// The arithmetic has no secret-dependent branches or table lookups.

// MaxShares is the most shares a secret can be split into: one per nonzero
// element of GF(2^8).
const MaxShares = 255

// Share is one Shamir share: the x-coordinate and the polynomials' values
// there, one byte per secret byte.
type Share struct {
	X byte
	Y []byte
}

// ErrShares marks shares that cannot be combined: too few, duplicated, of
// different lengths, or with x = 0.
var ErrShares = errors.New("invalid shares")

// Split splits secret into n shares, any k of which reconstruct it. The
// shares have x-coordinates 1…n. Coefficients are read from rnd (use
// crypto/rand.Reader).
func Split(secret []byte, n, k int, rnd io.Reader) ([]Share, error) {
	switch {
	case len(secret) == 0:
		return nil, errors.New("split: empty secret")
	case k < 2:
		return nil, fmt.Errorf("split: threshold %d: must be at least 2", k)
	case n < k:
		return nil, fmt.Errorf("split: %d shares is fewer than the threshold %d", n, k)
	case n > MaxShares:
		return nil, fmt.Errorf("split: %d shares: at most %d", n, MaxShares)
	}
	shares := make([]Share, n)
	for i := range shares {
		shares[i] = Share{X: byte(i + 1), Y: make([]byte, len(secret))}
	}
	coeffs := make([]byte, k) // coeffs[0] is the secret byte
	for b, s := range secret {
		coeffs[0] = s
		if _, err := io.ReadFull(rnd, coeffs[1:]); err != nil {
			return nil, fmt.Errorf("split: random coefficients: %w", err)
		}
		for i := range shares {
			shares[i].Y[b] = evalPoly(coeffs, shares[i].X)
		}
	}
	clear(coeffs)
	return shares, nil
}

// Combine reconstructs the secret from shares by interpolating at x = 0.
// It cannot tell whether enough shares were given or whether one is wrong:
// fewer than the threshold, or a corrupted share, give a wrong secret, so
// the caller must check the result (the kit does by decrypting with it).
func Combine(shares []Share) ([]byte, error) {
	if len(shares) == 0 {
		return nil, fmt.Errorf("%w: none given", ErrShares)
	}
	size := len(shares[0].Y)
	if size == 0 {
		return nil, fmt.Errorf("%w: empty share", ErrShares)
	}
	var seen [256]bool
	for _, s := range shares {
		switch {
		case s.X == 0:
			return nil, fmt.Errorf("%w: x-coordinate 0 would be the secret itself", ErrShares)
		case seen[s.X]:
			return nil, fmt.Errorf("%w: share %d given twice", ErrShares, s.X)
		case len(s.Y) != size:
			return nil, fmt.Errorf("%w: shares of different lengths (%d and %d bytes)", ErrShares, size, len(s.Y))
		}
		seen[s.X] = true
	}
	// Lagrange basis at 0: l_i = Π_{j≠i} x_j / (x_j - x_i); in GF(2^8)
	// subtraction is XOR.
	basis := make([]byte, len(shares))
	for i, si := range shares {
		num, den := byte(1), byte(1)
		for j, sj := range shares {
			if i == j {
				continue
			}
			num = gfMul(num, sj.X)
			den = gfMul(den, sj.X^si.X)
		}
		basis[i] = gfMul(num, gfInv(den))
	}
	secret := make([]byte, size)
	for b := range secret {
		var v byte
		for i, s := range shares {
			v ^= gfMul(basis[i], s.Y[b])
		}
		secret[b] = v
	}
	return secret, nil
}

// evalPoly evaluates the polynomial with coefficients (constant first) at x
// by Horner's rule.
func evalPoly(coeffs []byte, x byte) byte {
	var v byte
	for i := len(coeffs) - 1; i >= 0; i-- {
		v = gfMul(v, x) ^ coeffs[i]
	}
	return v
}

// gfMul multiplies in GF(2^8) modulo 0x11B, in constant time.
func gfMul(a, b byte) byte {
	var p byte
	for range 8 {
		p ^= a & -(b & 1)     // add a when b's low bit is set
		carry := -(a >> 7)    // 0xFF when a overflows
		a = a<<1 ^ 0x1B&carry // multiply a by x, reducing
		b >>= 1
	}
	return p
}

// gfInv is the multiplicative inverse, a^254 (a^255 = 1 for a ≠ 0); 0 maps
// to 0.
func gfInv(a byte) byte {
	// 254 = 0b11111110: square-and-multiply with a fixed sequence.
	r := byte(1)
	x := a
	for range 7 {
		x = gfMul(x, x) // a^2, a^4, …, a^128
		r = gfMul(r, x)
	}
	return r
}
