import numpy as np
import pytest

from rps_infer import game
from rps_infer.game import PAPER, PLAYER1, PLAYER2, ROCK, SCISSORS, GameState, realistic_positions


def test_deck_has_seven_of_each_card_and_hands_of_five(rng):
    state = GameState.deal(rng)
    assert len(state.hands[PLAYER1]) == len(state.hands[PLAYER2]) == 5
    deck = [i % 3 for i in range(game.DECK_SIZE)]
    assert [deck.count(c) for c in (ROCK, PAPER, SCISSORS)] == [7, 7, 7]


def test_empty_board_encoding_marks_no_owner_and_player1_to_move():
    f = GameState().encode().reshape(9, 9)
    assert f.dtype == np.float32
    assert (f[:, 0:3] == 0).all()
    assert (f[:, 3] == 1).all() and (f[:, 4:6] == 0).all()
    assert (f[:, 6] == 1).all() and (f[:, 7] == 0).all() and (f[:, 8] == 0).all()


def test_placed_card_is_encoded_with_type_owner_and_side_to_move():
    state = GameState(hands={PLAYER1: [PAPER], PLAYER2: [ROCK]})
    state.play(0, 4)
    f = state.encode().reshape(9, 9)
    assert f[4].tolist() == [0, 1, 0, 0, 1, 0, 0, 1, 0]  # Paper, owned by player 1, player 2 to move
    assert f[0].tolist() == [0, 0, 0, 1, 0, 0, 0, 1, 0]


@pytest.mark.parametrize(
    ("mine", "theirs", "captured"),
    [(ROCK, SCISSORS, True), (SCISSORS, PAPER, True), (PAPER, ROCK, True),
     (ROCK, PAPER, False), (ROCK, ROCK, False)],
)
def test_card_captures_adjacent_opponent_card_it_beats(mine, theirs, captured):
    state = GameState(hands={PLAYER1: [theirs], PLAYER2: [mine]})
    state.play(0, 0)  # player 1 on a corner
    state.play(0, 1)  # player 2 next to it
    assert state.owners[0] == (PLAYER2 if captured else PLAYER1)


def test_capture_is_orthogonal_only():
    state = GameState(hands={PLAYER1: [SCISSORS], PLAYER2: [ROCK]})
    state.play(0, 0)
    state.play(0, 4)  # diagonal to cell 0
    assert state.owners[0] == PLAYER1


def test_game_ends_when_board_is_full_or_hands_empty(rng):
    state = GameState.deal(rng)
    moves = 0
    while not state.is_over():
        state.play(*state.legal_moves()[0])
        moves += 1
    assert moves == 9  # 10 cards in hand, 9 cells: the board fills first
    assert state.legal_moves() == []
    assert state.winner() in (PLAYER1, PLAYER2, game.NO_OWNER)


def test_game_ends_after_round_ten():
    state = GameState(hands={PLAYER1: [ROCK], PLAYER2: [ROCK]}, round=11)
    assert state.is_over()


def test_realistic_positions_are_legal_encodings_and_deterministic():
    x = realistic_positions(200, seed=7)
    assert x.shape == (200, 81) and x.dtype == np.float32
    cells = x.reshape(200, 9, 9)
    assert (cells[:, :, 3:6].sum(axis=2) == 1).all()  # exactly one owner state per cell
    occupied = cells[:, :, 0:3].sum(axis=2)
    assert ((occupied == 1) == (cells[:, :, 3] == 0)).all()  # a card exactly where someone owns the cell
    assert (cells[:, :, 6] + cells[:, :, 7] == 1).all() and (cells[:, :, 8] == 0).all()
    assert (cells[:, :, 6] == cells[:, :1, 6]).all()  # the side to move is the same on every cell
    assert len({row.tobytes() for row in x}) > 100  # varied, not one position repeated
    np.testing.assert_array_equal(x, realistic_positions(200, seed=7))
    assert not np.array_equal(x, realistic_positions(200, seed=8))


def test_realistic_positions_rejects_negative_count():
    with pytest.raises(ValueError, match="count"):
        realistic_positions(-1)
