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

// func poolBandF32(plane *float32, width, rows, n, base int, colMax *float32, colAt *int32, spans *int32, bins int, at *int32)
TEXT ·poolBandF32(SB), NOSPLIT, $0-80
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

bin:
	TESTQ   CX, CX
	JLE     done
	MOVLQSX (SI), AX         // first column
	MOVLQSX 4(SI), BX
	SUBQ    AX, BX           // columns left
	VMOVDQA Y4, Y1           // argmax
	JLE     binstore         // an empty bin: noPixel
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
	VPERM2F128 $1, Y0, Y0, Y8
	VMAXPS     Y8, Y0, Y0
	VPERMILPS  $0x4e, Y0, Y8
	VMAXPS     Y8, Y0, Y0
	VPERMILPS  $0xb1, Y0, Y8
	VMAXPS     Y8, Y0, Y0     // M in every lane
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
	VPERM2I128 $1, Y1, Y1, Y2
	VPMINSD    Y2, Y1, Y1
	VPSHUFD    $0x4e, Y1, Y2
	VPMINSD    Y2, Y1, Y1
	VPSHUFD    $0xb1, Y1, Y2
	VPMINSD    Y2, Y1, Y1

binstore:
	VMOVD X1, (DX)
	ADDQ  $8, SI
	ADDQ  $4, DX
	DECQ  CX
	JMP   bin

done:
	VZEROUPPER
	RET
