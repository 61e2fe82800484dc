package kit

import (
	"bytes"
	"crypto/rand"
	"errors"
	mrand "math/rand/v2"
	"testing"
)

// The AES field facts below are from FIPS-197 (sections 4.2 and 4.2.1 and
// the inverse used in its S-box example) and the Rijndael antilog table
// for the generator {03}.
func TestGFMulPublishedValues(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ a, b, want byte }{
		{0x57, 0x83, 0xc1}, // FIPS-197 4.2
		{0x57, 0x13, 0xfe}, // FIPS-197 4.2.1
		{0x57, 0x02, 0xae}, // xtime({57})
		{0x57, 0x04, 0x47},
		{0x57, 0x08, 0x8e},
		{0x57, 0x10, 0x07},
		{0x53, 0xca, 0x01}, // {53} and {ca} are inverses
		{0x03, 0x07, 0x09}, // (x+1)(x^2+x+1) = x^3+1
		{0x00, 0x7f, 0x00},
		{0x01, 0xee, 0xee},
	} {
		if got := gfMul(c.a, c.b); got != c.want {
			t.Errorf("{%02x}·{%02x} = {%02x}, want {%02x}", c.a, c.b, got, c.want)
		}
		if got := gfMul(c.b, c.a); got != c.want {
			t.Errorf("{%02x}·{%02x} = {%02x}, want {%02x} (commuted)", c.b, c.a, got, c.want)
		}
	}
	if gfInv(0x53) != 0xca || gfInv(0xca) != 0x53 || gfInv(0x01) != 0x01 || gfInv(0) != 0 {
		t.Errorf("inverses: {53}⁻¹ = {%02x}, {ca}⁻¹ = {%02x}", gfInv(0x53), gfInv(0xca))
	}
	// The first powers of the generator {03}: the Rijndael antilog table.
	antilog := []byte{0x01, 0x03, 0x05, 0x0f, 0x11, 0x33, 0x55, 0xff, 0x1a, 0x2e, 0x72, 0x96, 0xa1, 0xf8, 0x13, 0x35,
		0x5f, 0xe1, 0x38, 0x48, 0xd8, 0x73, 0x95, 0xa4, 0xf7, 0x02, 0x06, 0x0a, 0x1e, 0x22, 0x66, 0xaa}
	p := byte(1)
	for i, want := range antilog {
		if p != want {
			t.Fatalf("{03}^%d = {%02x}, want {%02x}", i, p, want)
		}
		p = gfMul(p, 0x03)
	}
}

// TestGFFieldLaws checks gfMul against log/antilog tables built from the
// generator {03}, over every pair, and the field laws the scheme needs.
func TestGFFieldLaws(t *testing.T) {
	t.Parallel()
	var exp [255]byte
	var log [256]int
	seen := map[byte]bool{}
	p := byte(1)
	for i := range exp {
		if seen[p] {
			t.Fatalf("{03} has order %d, want 255 (not a generator)", i)
		}
		seen[p] = true
		exp[i], log[p] = p, i
		// p·{03} = p·x + p, computed without gfMul.
		x := p << 1
		if p&0x80 != 0 {
			x ^= 0x1b
		}
		p = x ^ p
	}
	if p != 1 {
		t.Fatalf("{03}^255 = {%02x}, want {01}", p)
	}
	for a := range 256 {
		for b := range 256 {
			want := byte(0)
			if a != 0 && b != 0 {
				want = exp[(log[a]+log[b])%255]
			}
			if got := gfMul(byte(a), byte(b)); got != want {
				t.Fatalf("{%02x}·{%02x} = {%02x}, want {%02x}", a, b, got, want)
			}
		}
		if a != 0 && gfMul(byte(a), gfInv(byte(a))) != 1 {
			t.Fatalf("{%02x}·{%02x}⁻¹ ≠ 1", a, a)
		}
	}
}

// fixedReader feeds chosen polynomial coefficients to Split.
type fixedReader struct{ b []byte }

func (r *fixedReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, errors.New("out of coefficients")
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

// Hand-computed shares: f(x) = {42} + {01}x, and f(x) = {02}x + {03}x².
func TestShamirKnownShares(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		secret, coeffs []byte
		k              int
		want           []byte // f(1), f(2), f(3)
	}{
		{[]byte{0x42}, []byte{0x01}, 2, []byte{0x43, 0x40, 0x41}},
		// f(1) = 2^3 = 1; f(2) = {02}{02} ^ {03}{04} = 4^12 = 8; f(3) = {02}{03} ^ {03}{05} = 6^15 = 9.
		{[]byte{0x00}, []byte{0x02, 0x03}, 3, []byte{0x01, 0x08, 0x09}},
	} {
		shares, err := Split(c.secret, 3, c.k, &fixedReader{c.coeffs})
		if err != nil {
			t.Fatal(err)
		}
		for i, s := range shares {
			if s.X != byte(i+1) || s.Y[0] != c.want[i] {
				t.Errorf("secret %x coeffs %x: share %d = (%d, {%02x}), want (%d, {%02x})", c.secret, c.coeffs, i, s.X, s.Y[0], i+1, c.want[i])
			}
		}
		got, err := Combine(shares[len(shares)-c.k:])
		if err != nil || !bytes.Equal(got, c.secret) {
			t.Errorf("combine: %x, %v; want %x", got, err, c.secret)
		}
	}
}

func subsets(n int) [][]int {
	var out [][]int
	for mask := 1; mask < 1<<n; mask++ {
		var s []int
		for i := range n {
			if mask&(1<<i) != 0 {
				s = append(s, i)
			}
		}
		out = append(out, s)
	}
	return out
}

func TestShamirAnyThresholdReconstructs(t *testing.T) {
	t.Parallel()
	for _, nk := range [][2]int{{2, 2}, {3, 2}, {5, 3}, {5, 5}, {7, 4}} {
		n, k := nk[0], nk[1]
		secret := make([]byte, 74)
		rand.Read(secret)
		shares, err := Split(secret, n, k, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		for _, idx := range subsets(n) {
			got, err := Combine(pick(shares, idx))
			if err != nil {
				t.Fatal(err)
			}
			if len(idx) >= k && !bytes.Equal(got, secret) {
				t.Errorf("%d of %d: shares %v do not reconstruct", k, n, idx)
			}
			if len(idx) < k && bytes.Equal(got, secret) {
				t.Errorf("%d of %d: %d shares %v reconstruct the secret", k, n, len(idx), idx)
			}
		}
	}
}

// TestShamirFewerSharesRevealNothing checks perfect secrecy exhaustively:
// for threshold k, the k-1 shares at x = 1…k-1 take every possible value
// exactly once as the random coefficients range over all their values,
// whatever the secret. So any k-1 shares are consistent with every secret,
// each equally likely.
func TestShamirFewerSharesRevealNothing(t *testing.T) {
	t.Parallel()
	// k = 2: one share, every secret.
	for s := range 256 {
		var count [256]int
		for a1 := range 256 {
			count[evalPoly([]byte{byte(s), byte(a1)}, 1)]++
		}
		for y, c := range count {
			if c != 1 {
				t.Fatalf("k=2 secret {%02x}: share value {%02x} arises %d times, want 1", s, y, c)
			}
		}
	}
	// k = 3: two shares, a sample of secrets.
	for _, s := range []byte{0x00, 0x01, 0x53, 0xca, 0xff} {
		count := make([]uint8, 1<<16)
		for a := range 1 << 16 {
			c := []byte{s, byte(a), byte(a >> 8)}
			count[int(evalPoly(c, 1))<<8|int(evalPoly(c, 2))]++
		}
		for yy, c := range count {
			if c != 1 {
				t.Fatalf("k=3 secret {%02x}: shares (%02x, %02x) arise %d times, want 1", s, yy>>8, yy&0xff, c)
			}
		}
	}
	// And concretely: two shares of a real 3-of-5 split, plus a guess for
	// the secret as the point (0, s), always interpolate to a valid
	// polynomial whose third share differs per guess: nothing rules a
	// guess out.
	shares, err := Split([]byte{0x99}, 5, 3, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	thirds := map[byte]bool{}
	for s := range 256 {
		// The polynomial through (0,s), share 1 and share 2, at x = 3.
		pts := []Share{{X: 1, Y: shares[0].Y}, {X: 2, Y: shares[1].Y}}
		y3 := lagrangeAt(append(pts, Share{X: 0, Y: []byte{byte(s)}}), 3)
		thirds[y3] = true
	}
	if len(thirds) != 256 {
		t.Fatalf("guesses give %d distinct third shares, want 256", len(thirds))
	}
}

// lagrangeAt evaluates at x the polynomial through pts (first byte only),
// independently of Combine.
func lagrangeAt(pts []Share, x byte) byte {
	var v byte
	for i, pi := range pts {
		num, den := byte(1), byte(1)
		for j, pj := range pts {
			if i != j {
				num = gfMul(num, x^pj.X)
				den = gfMul(den, pi.X^pj.X)
			}
		}
		v ^= gfMul(pi.Y[0], gfMul(num, gfInv(den)))
	}
	return v
}

func TestShamirErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		secret []byte
		n, k   int
	}{{nil, 3, 2}, {[]byte("s"), 3, 1}, {[]byte("s"), 2, 3}, {[]byte("s"), 256, 3}} {
		if _, err := Split(c.secret, c.n, c.k, rand.Reader); err == nil {
			t.Errorf("Split(%q, %d, %d) succeeded", c.secret, c.n, c.k)
		}
	}
	if _, err := Split([]byte("s"), 3, 2, &fixedReader{}); err == nil {
		t.Error("Split with a failing random source succeeded")
	}
	for name, shares := range map[string][]Share{
		"none":      nil,
		"empty":     {{X: 1}},
		"x zero":    {{X: 0, Y: []byte{1}}, {X: 1, Y: []byte{2}}},
		"duplicate": {{X: 1, Y: []byte{1}}, {X: 1, Y: []byte{2}}},
		"lengths":   {{X: 1, Y: []byte{1}}, {X: 2, Y: []byte{2, 3}}},
	} {
		if _, err := Combine(shares); !errors.Is(err, ErrShares) {
			t.Errorf("%s: Combine error %v, want ErrShares", name, err)
		}
	}
}

func FuzzShamir(f *testing.F) {
	f.Add([]byte("AGE-SECRET-KEY-1QQQ"), uint8(5), uint8(3), uint64(1))
	f.Add([]byte{0}, uint8(2), uint8(2), uint64(2))
	f.Add(bytes.Repeat([]byte{0xff}, 100), uint8(255), uint8(254), uint64(3))
	f.Fuzz(func(t *testing.T, secret []byte, n, k uint8, seed uint64) {
		if len(secret) == 0 || k < 2 || n < k || len(secret) > 512 {
			return
		}
		rng := mrand.New(mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
		shares, err := Split(secret, int(n), int(k), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		// A random k of them, in random order, reconstruct.
		rng.Shuffle(len(shares), func(i, j int) { shares[i], shares[j] = shares[j], shares[i] })
		got, err := Combine(shares[:k])
		if err != nil || !bytes.Equal(got, secret) {
			t.Fatalf("%d of %d: %x, %v; want %x", k, n, got, err, secret)
		}
		// All n of them do too.
		if got, err := Combine(shares); err != nil || !bytes.Equal(got, secret) {
			t.Fatalf("all %d: %x, %v", n, got, err)
		}
		// Changing one byte of one share changes the result.
		shares[0].Y[0] ^= 1
		if got, _ := Combine(shares[:k]); bytes.Equal(got, secret) {
			t.Fatal("a corrupted share still reconstructs the secret")
		}
	})
}

func TestCombinationsAndBinomial(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ n, k, want int }{{5, 3, 10}, {5, 2, 10}, {6, 6, 1}, {7, 1, 7}, {10, 4, 210}} {
		if got := len(combinations(c.n, c.k)); got != c.want {
			t.Errorf("combinations(%d, %d) has %d, want %d", c.n, c.k, got, c.want)
		}
		if got := binomial(c.n, c.k); got != c.want {
			t.Errorf("binomial(%d, %d) = %d, want %d", c.n, c.k, got, c.want)
		}
	}
	if binomial(255, 128) != maxSubsets+1 {
		t.Error("binomial does not saturate")
	}
}
