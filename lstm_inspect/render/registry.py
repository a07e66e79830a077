"""Registers each report type's JSON and Rich renderers for :class:`lstm_inspect.reporting.Rendered`."""

from __future__ import annotations

from lstm_inspect.analyses.compare import CompareReport
from lstm_inspect.analyses.flops import FlopsGrid, FlopsReport
from lstm_inspect.analyses.memory import MemoryReport
from lstm_inspect.analyses.params import ParamReport
from lstm_inspect.analyses.report import FullReport
from lstm_inspect.analyses.structure import StructureReport
from lstm_inspect.render.compare import compare_json, compare_rich
from lstm_inspect.render.flops import flops_json, flops_rich, grid_json, grid_rich
from lstm_inspect.render.memory import memory_json, memory_rich
from lstm_inspect.render.params import params_json, params_rich
from lstm_inspect.render.report import report_json, report_rich
from lstm_inspect.render.structure import structure_json, structure_rich
from lstm_inspect.reporting import register

register(ParamReport, params_json, params_rich)
register(StructureReport, structure_json, structure_rich)
register(FlopsReport, flops_json, flops_rich)
register(FlopsGrid, grid_json, grid_rich)
register(MemoryReport, memory_json, memory_rich)
register(CompareReport, compare_json, compare_rich)
register(FullReport, report_json, report_rich)
