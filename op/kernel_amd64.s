//go:build amd64 && gc && !purego

#include "textflag.h"

// AVX2 versions of the inner loops of sumLossChunk, sumLossSave and gradPred (kernel.go; each
// stub's reference Go loop is in its doc comment in kernel_amd64.go), four float64 lanes
// at a time. They perform the same IEEE operations in the same order as the Go loops (no FMA),
// so their results are bit-identical: lane k accumulates elements k, k+4, k+8, ... exactly like
// the Go loop's accumulator s_k. n is a multiple of 4; the caller does the tail.
//
// kconst (kernel_amd64.go): beta 0, quad 8, offset 16, slope 24, scale 32, absMask 40,
// signMask 48, one 56.

// The loss of four elements whose residual x is in Y0 (clobbers Y1-Y5), added to Y12:
// Y12 += wout * (|x| >= beta ? |x| - offset : (quad*x)*x), with wout in Y6.
#define SUM4 \
	VANDPD    Y11, Y0, Y1; \
	VSUBPD    Y10, Y1, Y2; \
	VMULPD    Y0, Y9, Y3; \
	VMULPD    Y0, Y3, Y3; \
	VCMPPD    $0x1d, Y8, Y1, Y4; \
	VBLENDVPD Y4, Y2, Y3, Y5; \
	VMULPD    Y6, Y5, Y5; \
	VADDPD    Y5, Y12, Y12

#define SUMCONSTS \
	VBROADCASTSD 0(DX), Y8; \
	VBROADCASTSD 8(DX), Y9; \
	VBROADCASTSD 16(DX), Y10; \
	VBROADCASTSD 40(DX), Y11; \
	VMOVUPD      0(R10), Y12

// func sum4F64(pred, target, win, wout *float64, n int, c *kconst, lanes *[4]float64)
TEXT ·sum4F64(SB), NOSPLIT, $0-56
	MOVQ pred+0(FP), SI
	MOVQ target+8(FP), DI
	MOVQ win+16(FP), R8
	MOVQ wout+24(FP), R9
	MOVQ n+32(FP), CX
	MOVQ c+40(FP), DX
	MOVQ lanes+48(FP), R10
	SUMCONSTS
	XORQ AX, AX

sum64loop:
	CMPQ    AX, CX
	JGE     sum64done
	VMOVUPD (SI)(AX*8), Y0
	VSUBPD  (DI)(AX*8), Y0, Y0   // pred - target
	VMULPD  (R8)(AX*8), Y0, Y0   // x = win*(pred - target)
	VMOVUPD (R9)(AX*8), Y6
	SUM4
	ADDQ    $4, AX
	JMP     sum64loop

sum64done:
	VMOVUPD Y12, 0(R10)
	VZEROUPPER
	RET

// func sum4F32(pred, target, win, wout *float32, n int, c *kconst, lanes *[4]float64)
TEXT ·sum4F32(SB), NOSPLIT, $0-56
	MOVQ pred+0(FP), SI
	MOVQ target+8(FP), DI
	MOVQ win+16(FP), R8
	MOVQ wout+24(FP), R9
	MOVQ n+32(FP), CX
	MOVQ c+40(FP), DX
	MOVQ lanes+48(FP), R10
	SUMCONSTS
	XORQ AX, AX

sum32loop:
	CMPQ      AX, CX
	JGE       sum32done
	VCVTPS2PD (SI)(AX*4), Y0
	VCVTPS2PD (DI)(AX*4), Y7
	VSUBPD    Y7, Y0, Y0
	VCVTPS2PD (R8)(AX*4), Y7
	VMULPD    Y7, Y0, Y0
	VCVTPS2PD (R9)(AX*4), Y6
	SUM4
	ADDQ      $4, AX
	JMP       sum32loop

sum32done:
	VMOVUPD Y12, 0(R10)
	VZEROUPPER
	RET

// The gradient of four elements: residual x in Y0, win in Y7, scale*up in Y6 (clobbers Y1-Y5);
// leaves Y6 = ((scale*up*wout)*win)*d with d = |x| >= beta ? copysign(1, x) : slope*x, wout
// multiplied in from Y13.
#define GRAD4 \
	VANDPD    Y11, Y0, Y1; \
	VCMPPD    $0x1d, Y8, Y1, Y4; \
	VANDPD    Y14, Y0, Y2; \
	VORPD     Y15, Y2, Y2; \
	VMULPD    Y0, Y9, Y3; \
	VBLENDVPD Y4, Y2, Y3, Y5; \
	VMULPD    Y13, Y6, Y6; \
	VMULPD    Y7, Y6, Y6; \
	VMULPD    Y5, Y6, Y6

#define GRADCONSTS \
	VBROADCASTSD 0(DX), Y8; \
	VBROADCASTSD 24(DX), Y9; \
	VBROADCASTSD 32(DX), Y10; \
	VBROADCASTSD 40(DX), Y11; \
	VBROADCASTSD 48(DX), Y14; \
	VBROADCASTSD 56(DX), Y15

// func grad4F64(pred, target, win, wout, up, dst *float64, n int, c *kconst)
TEXT ·grad4F64(SB), NOSPLIT, $0-64
	MOVQ pred+0(FP), SI
	MOVQ target+8(FP), DI
	MOVQ win+16(FP), R8
	MOVQ wout+24(FP), R9
	MOVQ up+32(FP), R11
	MOVQ dst+40(FP), R12
	MOVQ n+48(FP), CX
	MOVQ c+56(FP), DX
	GRADCONSTS
	XORQ AX, AX

grad64loop:
	CMPQ    AX, CX
	JGE     grad64done
	VMOVUPD (R8)(AX*8), Y7
	VMOVUPD (SI)(AX*8), Y0
	VSUBPD  (DI)(AX*8), Y0, Y0
	VMULPD  Y7, Y0, Y0
	VMULPD  (R11)(AX*8), Y10, Y6 // scale*up
	VMOVUPD (R9)(AX*8), Y13
	GRAD4
	VMOVUPD Y6, (R12)(AX*8)
	ADDQ    $4, AX
	JMP     grad64loop

grad64done:
	VZEROUPPER
	RET

// func grad4F32(pred, target, win, wout, up, dst *float32, n int, c *kconst)
TEXT ·grad4F32(SB), NOSPLIT, $0-64
	MOVQ pred+0(FP), SI
	MOVQ target+8(FP), DI
	MOVQ win+16(FP), R8
	MOVQ wout+24(FP), R9
	MOVQ up+32(FP), R11
	MOVQ dst+40(FP), R12
	MOVQ n+48(FP), CX
	MOVQ c+56(FP), DX
	GRADCONSTS
	XORQ AX, AX

grad32loop:
	CMPQ       AX, CX
	JGE        grad32done
	VCVTPS2PD  (R8)(AX*4), Y7
	VCVTPS2PD  (SI)(AX*4), Y0
	VCVTPS2PD  (DI)(AX*4), Y1
	VSUBPD     Y1, Y0, Y0
	VMULPD     Y7, Y0, Y0
	VCVTPS2PD  (R11)(AX*4), Y6
	VMULPD     Y6, Y10, Y6
	VCVTPS2PD  (R9)(AX*4), Y13
	GRAD4
	VCVTPD2PSY Y6, X6
	VMOVUPS    X6, (R12)(AX*4)
	ADDQ       $4, AX
	JMP        grad32loop

grad32done:
	VZEROUPPER
	RET

// The loss and the saved factor of four elements: residual x in Y0, win in Y7, wout in Y6
// (clobbers Y1-Y5). Y12 += wout * f(x) exactly as SUM4; then
// Y3 = ((norm*wout)*win)*d with d = |x| >= beta ? copysign(1, x) : slope*x, the order of GRAD4
// with scale*up = norm*1 = norm.
#define SUMSAVE4 \
	VANDPD       Y11, Y0, Y1; \
	VSUBPD       Y10, Y1, Y2; \
	VMULPD       Y0, Y9, Y3; \
	VMULPD       Y0, Y3, Y3; \
	VCMPPD       $0x1d, Y8, Y1, Y4; \
	VBLENDVPD    Y4, Y2, Y3, Y5; \
	VMULPD       Y6, Y5, Y5; \
	VADDPD       Y5, Y12, Y12; \
	VANDPD       Y14, Y0, Y2; \
	VORPD        Y15, Y2, Y2; \
	VMULPD       Y0, Y13, Y3; \
	VBLENDVPD    Y4, Y2, Y3, Y5; \
	VBROADCASTSD 32(DX), Y3; \
	VMULPD       Y6, Y3, Y3; \
	VMULPD       Y7, Y3, Y3; \
	VMULPD       Y5, Y3, Y3

#define SUMSAVECONSTS \
	VBROADCASTSD 0(DX), Y8; \
	VBROADCASTSD 8(DX), Y9; \
	VBROADCASTSD 16(DX), Y10; \
	VBROADCASTSD 24(DX), Y13; \
	VBROADCASTSD 40(DX), Y11; \
	VBROADCASTSD 48(DX), Y14; \
	VBROADCASTSD 56(DX), Y15; \
	VMOVUPD      0(R10), Y12

// func sumSave4F64(pred, target, win, wout, dst *float64, n int, c *kconst, lanes *[4]float64)
TEXT ·sumSave4F64(SB), NOSPLIT, $0-64
	MOVQ pred+0(FP), SI
	MOVQ target+8(FP), DI
	MOVQ win+16(FP), R8
	MOVQ wout+24(FP), R9
	MOVQ dst+32(FP), R12
	MOVQ n+40(FP), CX
	MOVQ c+48(FP), DX
	MOVQ lanes+56(FP), R10
	SUMSAVECONSTS
	XORQ AX, AX

save64loop:
	CMPQ    AX, CX
	JGE     save64done
	VMOVUPD (R8)(AX*8), Y7
	VMOVUPD (SI)(AX*8), Y0
	VSUBPD  (DI)(AX*8), Y0, Y0 // pred - target
	VMULPD  Y7, Y0, Y0         // x = win*(pred - target)
	VMOVUPD (R9)(AX*8), Y6
	SUMSAVE4
	VMOVUPD Y3, (R12)(AX*8)
	ADDQ    $4, AX
	JMP     save64loop

save64done:
	VMOVUPD Y12, 0(R10)
	VZEROUPPER
	RET

// func sumSave4F32(pred, target, win, wout, dst *float32, n int, c *kconst, lanes *[4]float64)
TEXT ·sumSave4F32(SB), NOSPLIT, $0-64
	MOVQ pred+0(FP), SI
	MOVQ target+8(FP), DI
	MOVQ win+16(FP), R8
	MOVQ wout+24(FP), R9
	MOVQ dst+32(FP), R12
	MOVQ n+40(FP), CX
	MOVQ c+48(FP), DX
	MOVQ lanes+56(FP), R10
	SUMSAVECONSTS
	XORQ AX, AX

save32loop:
	CMPQ       AX, CX
	JGE        save32done
	VCVTPS2PD  (R8)(AX*4), Y7
	VCVTPS2PD  (SI)(AX*4), Y0
	VCVTPS2PD  (DI)(AX*4), Y1
	VSUBPD     Y1, Y0, Y0
	VMULPD     Y7, Y0, Y0
	VCVTPS2PD  (R9)(AX*4), Y6
	SUMSAVE4
	VCVTPD2PSY Y3, X3
	VMOVUPS    X3, (R12)(AX*4)
	ADDQ       $4, AX
	JMP        save32loop

save32done:
	VMOVUPD Y12, 0(R10)
	VZEROUPPER
	RET
