//go:build amd64 && gc && !purego

#include "textflag.h"

// AVX2 version of poolBandGo[float32] (pool_kernel.go; the stub's doc comment in
// kernel_amd64.go holds the reference loop). The column pass runs eight columns at a time and
// makes per column the Go loop's comparison (v > max, ordered: false on NaN), selecting the same
// bits (a blend, not an arithmetic maximum). Loads are masked (the lanes past the last column
// are never read) and stores whole, so colMax and colAt must have room for n+7 elements. Each bin's argmax is then the Go loop's: the largest column maximum M (colMax holds
// no NaN, and which zero VMAXPS keeps does not matter: M is only compared with ==), then the
// smallest index among the bin's columns equal to M. The argmaxes are integers, so they are
// the Go loop's exactly.

DATA negmax<>+0(SB)/4, $0xff7fffff // -FLT_MAX
GLOBL negmax<>(SB), RODATA|NOPTR, $4
DATA nopixel<>+0(SB)/4, $0x7fffffff // noPixel
GLOBL nopixel<>(SB), RODATA|NOPTR, $4

// iota: 0..7. masks: loading 8 words at masks<>+4*(8-r) gives r lanes of -1, then 0s
DATA iota<>+0(SB)/8, $0x0000000100000000
DATA iota<>+8(SB)/8, $0x0000000300000002
DATA iota<>+16(SB)/8, $0x0000000500000004
DATA iota<>+24(SB)/8, $0x0000000700000006
GLOBL iota<>(SB), RODATA|NOPTR, $32

DATA masks<>+0(SB)/8, $-1
DATA masks<>+8(SB)/8, $-1
DATA masks<>+16(SB)/8, $-1
DATA masks<>+24(SB)/8, $-1
DATA masks<>+32(SB)/8, $0
DATA masks<>+40(SB)/8, $0
DATA masks<>+48(SB)/8, $0
DATA masks<>+56(SB)/8, $0
GLOBL masks<>(SB), RODATA|NOPTR, $64

// The r = min(R, 8) first lanes mask of a count R in reg (clobbers R12) into ymm.
#define LANEMASK(reg, ymm) \
	MOVQ    reg, R12; \
	CMPQ    R12, $8; \
	JLE     2(PC); \
	MOVQ    $8, R12; \
	SHLQ    $2, R12; \
	NEGQ    R12; \
	LEAQ    masks<>+32(SB), R11; \
	VMOVDQU (R11)(R12*1), ymm

// The largest of the 8 lanes of y (no NaN) into every lane of y (clobbers tmp).
#define HMAX(y, tmp) \
	VPERM2F128 $1, y, y, tmp; \
	VMAXPS     tmp, y, y; \
	VPERMILPS  $0x4e, y, tmp; \
	VMAXPS     tmp, y, y; \
	VPERMILPS  $0xb1, y, tmp; \
	VMAXPS     tmp, y, y

// The y kernels' arguments after the first: outH in CX, outW in DX, tapFirst in R8, taps in
// R9, rows in R10, cnt in every lane of Y7.
#define YARGS \
	MOVQ         outH+8(FP), CX; \
	MOVQ         outW+16(FP), DX; \
	MOVQ         tapFirst+24(FP), R8; \
	MOVQ         taps+32(FP), R9; \
	MOVQ         rows+40(FP), R10; \
	VBROADCASTSS cnt+48(FP), Y7

// func poolBandF32(plane *float32, width, rows, n, base int, colMax *float32, colAt *int32, spans *int32, bins int, at *int32, vals *float32)
TEXT ·poolBandF32(SB), NOSPLIT, $0-88
	MOVQ plane+0(FP), SI
	MOVQ width+8(FP), DX
	MOVQ rows+16(FP), CX
	MOVQ n+24(FP), BX
	MOVQ base+32(FP), R8
	MOVQ colMax+40(FP), DI
	MOVQ colAt+48(FP), R9

	VBROADCASTSS negmax<>(SB), Y5
	VPBROADCASTD nopixel<>(SB), Y4
	TESTQ        CX, CX
	JLE          bins
	MOVQ         DX, X7
	VPBROADCASTD X7, Y7      // width, for the pixel indices
	SHLQ         $2, DX      // width in bytes
	MOVQ         R8, X6
	VPBROADCASTD X6, Y6
	VPADDD       iota<>(SB), Y6, Y6 // indices of the first row's 8 pixels
	MOVQ         $8, AX
	MOVQ         AX, X3
	VPBROADCASTD X3, Y3      // 8

cols:
	TESTQ   BX, BX
	JLE     bins
	LANEMASK(BX, Y10)
	VMOVAPS Y5, Y0           // max
	VMOVDQA Y4, Y1           // argmax
	VMOVDQA Y6, Y2           // pixel index
	MOVQ    SI, R10
	MOVQ    CX, R11

row:
	VMASKMOVPS (R10), Y10, Y8
	VCMPPS     $0x1e, Y0, Y8, Y9 // v > max (GT_OQ)
	VBLENDVPS  Y9, Y8, Y0, Y0
	VBLENDVPS  Y9, Y2, Y1, Y1
	VPADDD     Y7, Y2, Y2
	ADDQ       DX, R10
	DECQ       R11
	JNZ        row

store:
	VMOVUPS Y0, (DI)
	VMOVDQU Y1, (R9)
	ADDQ    $32, SI
	ADDQ    $32, DI
	ADDQ    $32, R9
	VPADDD  Y3, Y6, Y6
	SUBQ    $8, BX
	JMP     cols

bins:
	MOVQ colMax+40(FP), DI
	MOVQ colAt+48(FP), R9
	MOVQ spans+56(FP), SI
	MOVQ bins+64(FP), CX
	MOVQ at+72(FP), DX
	MOVQ vals+80(FP), R13

bin:
	TESTQ   CX, CX
	JLE     done
	MOVLQSX (SI), AX         // first column
	MOVLQSX 4(SI), BX
	SUBQ    AX, BX           // columns left
	JLE     binempty
	CMPQ    BX, $8
	JGT     binwide

	// a bin of at most 8 columns: one vector
	LEAQ       masks<>+32(SB), R11
	MOVQ       BX, R12
	SHLQ       $2, R12
	SUBQ       R12, R11
	VMOVDQU    (R11), Y10    // the bin's lanes
	VMOVUPS    (DI)(AX*4), Y8
	VBLENDVPS  Y10, Y8, Y5, Y8 // lanes past the bin: -FLT_MAX
	VMOVAPS    Y8, Y0
	HMAX(Y0, Y9)             // M in every lane
	VCMPPS     $0x00, Y0, Y8, Y9 // colMax == M (EQ_OQ)
	VANDPS     Y10, Y9, Y9
	VMOVMSKPS  Y9, R11       // not 0: M is one of the bin's columns
	MOVL       R11, R12
	DECL       R12
	ANDL       R11, R12
	JNZ        bintie        // several columns reach M: the smallest index
	BSFL       R11, R11
	ADDQ       AX, R11
	MOVL       (R9)(R11*4), R12
	MOVL       R12, (DX)
	JMP        binval

bintie:
	VMOVDQU   (R9)(AX*4), Y2
	VBLENDVPS Y9, Y2, Y4, Y1
	JMP       binhmin

binwide:
	VMOVDQA Y4, Y1           // argmax
	LEAQ    (DI)(AX*4), R8
	MOVQ    BX, R10
	VMOVAPS Y5, Y0           // max

binmax:
	LANEMASK(R10, Y10)
	VMOVUPS   (R8), Y8
	VBLENDVPS Y10, Y8, Y5, Y8 // lanes past the bin: -FLT_MAX
	VMAXPS    Y8, Y0, Y0
	ADDQ      $32, R8
	SUBQ      $8, R10
	JGT       binmax
	HMAX(Y0, Y8)              // M in every lane
	LEAQ       (DI)(AX*4), R8
	LEAQ       (R9)(AX*4), R10

binat:
	LANEMASK(BX, Y10)
	VMOVUPS   (R8), Y8
	VCMPPS    $0x00, Y0, Y8, Y9 // colMax == M (EQ_OQ)
	VANDPS    Y10, Y9, Y9
	VMOVDQU   (R10), Y2
	VBLENDVPS Y9, Y2, Y4, Y2
	VPMINSD   Y2, Y1, Y1
	ADDQ      $32, R8
	ADDQ      $32, R10
	SUBQ      $8, BX
	JGT       binat

binhmin:
	VPERM2I128 $1, Y1, Y1, Y2
	VPMINSD    Y2, Y1, Y1
	VPSHUFD    $0x4e, Y1, Y2
	VPMINSD    Y2, Y1, Y1
	VPSHUFD    $0xb1, Y1, Y2
	VPMINSD    Y2, Y1, Y1

	VMOVD X1, R12
	MOVL  R12, (DX)

binval:                          // the bin's value: its argmax's pixel, or -FLT_MAX for none
	CMPL    R12, $0x7fffffff
	JEQ     binnone
	MOVLQSX R12, R11
	SUBQ    base+32(FP), R11 // the pixel's offset from the band's first
	MOVQ    plane+0(FP), R8
	MOVL    (R8)(R11*4), R12
	MOVL    R12, (R13)
	JMP     binnext

binnone:
	MOVL negmax<>(SB), R12
	MOVL R12, (R13)
	JMP  binnext

binempty:                        // no pixel: no argmax, the value 0
	MOVL $0x7fffffff, (DX)
	MOVL $0, (R13)

binnext:
	ADDQ $8, SI
	ADDQ $4, DX
	ADDQ $4, R13
	DECQ CX
	JMP  bin

done:
	VZEROUPPER
	RET

// func alignRowsF32(src *float32, width int, lines *int32, nlines, n int, tab *float32, h *float32, stride int)
//
// AVX2 version of alignRowsGo[float32] for one group of 8 bins (the lanes), four lines at a
// time: per line, per column x of the table in order, p = weight * v (VMULPS), masked to +0 in
// the lanes whose bin does not have x as a tap (VANDPS), added to the lane's sum (VADDPS).
// A lane's sum thus takes its bin's products in tap order, each rounded, as the Go loop does,
// and +0 elsewhere, which leaves it unchanged: a sum that starts at +0 is never -0.
TEXT ·alignRowsF32(SB), NOSPLIT, $0-64
	MOVQ lines+16(FP), R8
	MOVQ nlines+24(FP), CX
	MOVQ n+32(FP), BX
	MOVQ tab+40(FP), R9
	MOVQ h+48(FP), DI
	MOVQ stride+56(FP), R10
	SHLQ $2, R10             // stride in bytes

quad:
	CMPQ    CX, $4
	JLT     single
	MOVQ    src+0(FP), SI
	MOVQ    width+8(FP), DX
	SHLQ    $2, DX           // width in bytes
	MOVLQSX 0(R8), AX
	IMULQ   DX, AX
	LEAQ    (SI)(AX*1), R11  // the four lines
	MOVLQSX 4(R8), AX
	IMULQ   DX, AX
	LEAQ    (SI)(AX*1), R12
	MOVLQSX 8(R8), AX
	IMULQ   DX, AX
	LEAQ    (SI)(AX*1), R13
	MOVLQSX 12(R8), AX
	IMULQ   DX, AX
	ADDQ    AX, SI
	MOVQ    R9, DX           // table entry of column x
	XORQ    AX, AX           // x
	VXORPS  Y0, Y0, Y0
	VXORPS  Y1, Y1, Y1
	VXORPS  Y2, Y2, Y2
	VXORPS  Y3, Y3, Y3

quadx:
	VMOVUPS      (DX), Y8    // weights
	VMOVUPS      32(DX), Y9  // masks
	VBROADCASTSS (R11)(AX*4), Y10
	VMULPS       Y10, Y8, Y10
	VANDPS       Y9, Y10, Y10
	VADDPS       Y10, Y0, Y0
	VBROADCASTSS (R12)(AX*4), Y11
	VMULPS       Y11, Y8, Y11
	VANDPS       Y9, Y11, Y11
	VADDPS       Y11, Y1, Y1
	VBROADCASTSS (R13)(AX*4), Y12
	VMULPS       Y12, Y8, Y12
	VANDPS       Y9, Y12, Y12
	VADDPS       Y12, Y2, Y2
	VBROADCASTSS (SI)(AX*4), Y13
	VMULPS       Y13, Y8, Y13
	VANDPS       Y9, Y13, Y13
	VADDPS       Y13, Y3, Y3
	ADDQ         $64, DX
	INCQ         AX
	CMPQ         AX, BX
	JLT          quadx

	VMOVUPS Y0, (DI)
	ADDQ    R10, DI
	VMOVUPS Y1, (DI)
	ADDQ    R10, DI
	VMOVUPS Y2, (DI)
	ADDQ    R10, DI
	VMOVUPS Y3, (DI)
	ADDQ    R10, DI
	ADDQ    $16, R8
	SUBQ    $4, CX
	JMP     quad

single:
	TESTQ   CX, CX
	JLE     rowsdone
	MOVQ    src+0(FP), SI
	MOVQ    width+8(FP), DX
	SHLQ    $2, DX
	MOVLQSX 0(R8), AX
	IMULQ   DX, AX
	ADDQ    AX, SI
	MOVQ    R9, DX
	XORQ    AX, AX
	VXORPS  Y0, Y0, Y0

singlex:
	VMOVUPS      (DX), Y8
	VBROADCASTSS (SI)(AX*4), Y10
	VMULPS       Y10, Y8, Y10
	VANDPS       32(DX), Y10, Y10
	VADDPS       Y10, Y0, Y0
	ADDQ         $64, DX
	INCQ         AX
	CMPQ         AX, BX
	JLT          singlex

	VMOVUPS Y0, (DI)
	ADDQ    R10, DI
	ADDQ    $4, R8
	DECQ    CX
	JMP     single

rowsdone:
	VZEROUPPER
	RET

// func alignScatterF32(dst *float32, width int, lines *int32, nlines, vecs, outW int, tab *float32, shares *float32, stride int)
//
// AVX2 version of alignScatterGo[float32], eight pixels of a line (the lanes) at a time: per
// vector, per bin in order, p = weight * g (VMULPS), then acc + p (VADDPS) kept only in the
// lanes whose pixel is a tap of the bin (VBLENDVPS). A pixel thus takes its products in bin
// order, each rounded, as the Go loop does, and the other lanes are stored back unchanged.
TEXT ·alignScatterF32(SB), NOSPLIT, $0-72
	MOVQ lines+16(FP), R8
	MOVQ nlines+24(FP), CX
	MOVQ shares+56(FP), DI
	MOVQ stride+64(FP), R10
	SHLQ $2, R10             // stride in bytes
	MOVQ outW+40(FP), R13

line:
	TESTQ   CX, CX
	JLE     scatterdone
	MOVQ    dst+0(FP), SI
	MOVQ    width+8(FP), DX
	SHLQ    $2, DX
	MOVLQSX (R8), AX
	IMULQ   DX, AX
	ADDQ    AX, SI           // the line's first column of the window
	MOVQ    tab+48(FP), R9
	MOVQ    vecs+32(FP), BX

vec:
	VMOVUPS (SI), Y0         // eight pixels
	XORQ    AX, AX           // bin

bin:
	VBROADCASTSS (DI)(AX*4), Y1
	VMULPS       (R9), Y1, Y1
	VADDPS       Y0, Y1, Y2
	VMOVUPS      32(R9), Y3
	VBLENDVPS    Y3, Y2, Y0, Y0
	ADDQ         $64, R9
	INCQ         AX
	CMPQ         AX, R13
	JLT          bin

	VMOVUPS Y0, (SI)
	ADDQ    $32, SI
	DECQ    BX
	JNZ     vec

	ADDQ R10, DI
	ADDQ $4, R8
	DECQ CX
	JMP  line

scatterdone:
	VZEROUPPER
	RET

// func alignColsF32(dst *float32, outH, outW int, tapFirst *int32, taps *tap[float32], rows *float32, cnt float32, last *float32)
//
// AVX2 version of alignPlane[float32] for outW <= 8 bins per row (the lanes): per bin row, the
// sum from +0 of weight * rows[slot] over its taps in order (VMULPS, then VADDPS), divided by
// cnt (VDIVPS), as the Go loop's out[pw] += ..., out[pw] /= cnt. Each row is stored whole:
// rows 0 to outH-2 into dst (its lanes past outW land on the next row, which is stored after
// it), the last into last.
TEXT ·alignColsF32(SB), NOSPLIT, $0-64
	MOVQ dst+0(FP), DI
	YARGS
	SHLQ $2, DX              // a row of dst in bytes

colrow:
	MOVLQSX (R8), AX         // first tap
	MOVLQSX 4(R8), BX        // end
	VXORPS  Y0, Y0, Y0
	CMPQ    AX, BX
	JGE     coldiv
	IMUL3Q  $12, AX, R11     // taps are (pixel, slot int32, weight float32)
	ADDQ    R9, R11
	SUBQ    AX, BX

coltap:
	MOVLQSX      4(R11), R12 // slot
	SHLQ         $5, R12     // rows are 8 floats apart
	VBROADCASTSS 8(R11), Y1
	VMULPS       (R10)(R12*1), Y1, Y1
	VADDPS       Y1, Y0, Y0
	ADDQ         $12, R11
	DECQ         BX
	JNZ          coltap

coldiv:
	VDIVPS Y7, Y0, Y0
	ADDQ   $4, R8
	DECQ   CX
	JZ     collast
	VMOVUPS Y0, (DI)
	ADDQ    DX, DI
	JMP     colrow

collast:
	MOVQ    last+56(FP), DI
	VMOVUPS Y0, (DI)
	VZEROUPPER
	RET

// func alignSharesF32(src *float32, outH, outW int, tapFirst *int32, taps *tap[float32], rows *float32, cnt float32)
//
// AVX2 version of alignShares[float32] for outW <= 8 bins per row (the lanes), into rows that
// are zero: per bin row, share = up / cnt (VDIVPS; the row's outW elements are read through a
// masked load), then per tap in order rows[slot] += weight * share (VMULPS, then VADDPS), as the
// Go loop's gr[pw] += ....
TEXT ·alignSharesF32(SB), NOSPLIT, $0-52
	MOVQ src+0(FP), SI
	YARGS
	LANEMASK(DX, Y6)
	SHLQ $2, DX              // a row of up in bytes

sharerow:
	VMASKMOVPS (SI), Y6, Y0
	VDIVPS     Y7, Y0, Y0    // the shares up / cnt
	MOVLQSX    (R8), AX
	MOVLQSX    4(R8), BX
	CMPQ       AX, BX
	JGE        sharenext
	IMUL3Q     $12, AX, R11
	ADDQ       R9, R11
	SUBQ       AX, BX

sharetap:
	MOVLQSX      4(R11), R12
	SHLQ         $5, R12
	VBROADCASTSS 8(R11), Y1
	VMULPS       Y0, Y1, Y1
	VADDPS       (R10)(R12*1), Y1, Y1
	VMOVUPS      Y1, (R10)(R12*1)
	ADDQ         $12, R11
	DECQ         BX
	JNZ          sharetap

sharenext:
	ADDQ $4, R8
	ADDQ DX, SI
	DECQ CX
	JNZ  sharerow
	VZEROUPPER
	RET
